// Command build is the peer's build hook: it turns a chaincode package into an image
// pinned by digest in the registry and writes image.json to the build output.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kubecc/kubecc/pkg/build"
	"github.com/kubecc/kubecc/pkg/builders"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/hook"
	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/launch"
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
		res, err := builders.New(cfg, os.Stderr).Build(ctx, build.Input{SrcDir: src, Metadata: md, PackageID: id})
		if err != nil {
			return err
		}
		if err := build.WriteOutput(out, src, res); err != nil {
			return err
		}
		if cfg.Prepull {
			prepull(ctx, cfg, res.Image)
		}
		return nil
	})
}

// prepull is best effort: a failed pre-pull only costs the first launch the pull.
func prepull(ctx context.Context, cfg *config.Config, img chaincode.ImageRef) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	kube, err := kube.Connect(cfg)
	if err == nil {
		err = launch.Prepull(ctx, kube, cfg, img, os.Stderr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubecc: warning: image not pre-pulled: %s\n", hook.OneLine(err.Error()))
	}
}
