// Command release is the peer's release hook: it hands CouchDB indexes to the peer.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/kubecc/kubecc/pkg/hook"
	"github.com/kubecc/kubecc/pkg/release"
)

func main() {
	hook.Main("release", os.Args[1:], "BUILD_OUTPUT_DIR RELEASE_OUTPUT_DIR", func(_ context.Context, args []string) error {
		n, err := release.CouchDBIndexes(args[0], args[1])
		if err != nil {
			return err
		}
		if n > 0 {
			fmt.Fprintf(os.Stderr, "kubecc: released %d CouchDB index files\n", n)
		}
		return nil
	})
}
