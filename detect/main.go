// Command detect is the peer's detect hook: exit 0 when kubecc builds the package.
// Packages of other types exit 1 quietly so the next builder can try.
package main

import (
	"context"
	"errors"
	"os"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/hook"
)

func main() {
	hook.Main("detect", os.Args[1:], "CHAINCODE_SOURCE_DIR CHAINCODE_METADATA_DIR", func(_ context.Context, args []string) error {
		_, _, err := chaincode.Detect(args[0], args[1])
		if errors.Is(err, chaincode.ErrNotOurs) {
			return &hook.ExitError{Code: 1}
		}
		return err
	})
}
