// Command kubecc is the CI side of kubecc: it builds the same images as the build
// hook and writes ready-to-install chaincode packages that name them.
package main

import (
	"fmt"
	"os"

	"github.com/kubecc/kubecc/pkg/cli"
	"github.com/kubecc/kubecc/pkg/hook"
)

// version is set at link time (-X main.version=...).
var version = "dev"

func main() {
	if err := cli.App(version).Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "kubecc: %s\n", hook.OneLine(err.Error()))
		os.Exit(1)
	}
}
