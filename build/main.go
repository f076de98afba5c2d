// Command build is the peer's build hook: it turns a chaincode package into an image
// pinned by digest in the registry and writes image.json to the build output.
package main

import (
	"context"
	"os"

	"github.com/kubecc/kubecc/pkg/builder"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/hook"
)

func main() {
	hook.Main("build", os.Args[1:], "CHAINCODE_SOURCE_DIR CHAINCODE_METADATA_DIR BUILD_OUTPUT_DIR", func(ctx context.Context, args []string) error {
		src, mdDir, out := args[0], args[1], args[2]
		cfg, err := config.FromEnv()
		if err != nil {
			return err
		}
		_, md, err := chaincode.Detect(src, mdDir)
		if err != nil {
			return err
		}
		id, _ := chaincode.PackageIDFromBuildDir(src)
		res, err := builder.New(cfg, os.Stderr).Build(ctx, builder.Input{SrcDir: src, Metadata: md, PackageID: id})
		if err != nil {
			return err
		}
		return builder.WriteOutput(out, src, res)
	})
}
