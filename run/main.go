// Command run is the peer's run hook: it starts the chaincode in Kubernetes and lives
// exactly as long as it does. On SIGTERM it deletes what it created and exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/hook"
	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/launch"
)

func main() {
	hook.Main("run", os.Args[1:], "BUILD_OUTPUT_DIR RUN_METADATA_DIR", func(ctx context.Context, args []string) error {
		bld, runDir := args[0], args[1]
		cfg, err := config.FromEnv()
		if err != nil {
			return err
		}
		rc, err := chaincode.ReadRunConfig(runDir)
		if err != nil {
			return err
		}
		img, err := chaincode.ReadImageRef(bld + "/" + chaincode.ImageFile)
		if err != nil {
			return err
		}
		info, err := chaincode.ReadBuildInfo(bld)
		if err != nil {
			return err
		}
		params := &launch.Params{Config: cfg, Image: img, Info: info, Run: rc, Mode: cfg.Launch, IdleTimeout: cfg.IdleTimeout.Duration}
		// The package's own choice (kubecc.yaml, part of its hash) beats the builder's default.
		if info.Launch != "" {
			params.Mode = info.Launch
		}
		if info.IdleTimeout != "" {
			if params.IdleTimeout, err = time.ParseDuration(info.IdleTimeout); err != nil {
				return fmt.Errorf("%s/%s: field \"idleTimeout\": %v", bld, chaincode.BuildInfoFile, err)
			}
		}
		if !params.Serverless() && launch.JobMode {
			// A resident launch lives as long as its chaincode; hand it to the lean
			// build beside this one (no relay, no gRPC: a third less memory per chaincode).
			if err := execPodOnly(); err != nil {
				fmt.Fprintf(os.Stderr, "kubecc run: warning: %v; going on in %s\n", err, os.Args[0])
			}
		}
		kube, err := kube.Connect(cfg)
		if err != nil {
			return err
		}
		l := &launch.Launcher{Kube: kube, Params: params, Log: os.Stderr}
		err = l.Run(ctx)
		var exit *launch.ExitError
		if errors.As(err, &exit) {
			if exit.Code == 0 {
				return nil
			}
			return &hook.ExitError{Code: exit.Code, Err: err}
		}
		return err
	})
}
