// Package runhook is the run hook shared by two binaries: run, which can launch
// both modes, and run-pod, its lean twin for resident chaincode that leaves the
// serverless relay (and gRPC) out. Each main passes what it links.
package runhook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/hook"
	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/launch"
	"github.com/kubecc/kubecc/pkg/podspec"
)

// PodOnlyName is the lean build that serves resident launches; make puts it beside run.
const PodOnlyName = "run-pod"

// Serverless runs a job-mode launch (serverless.Run).
type Serverless func(ctx context.Context, kc kube.Client, p *podspec.Params, rc *chaincode.RunConfig, log *launch.Log, host string) error

// Main is the run hook. serverless is nil in run-pod.
func Main(serverless Serverless) {
	hook.Main("run", os.Args[1:], "BUILD_OUTPUT_DIR RUN_METADATA_DIR", func(ctx context.Context, args []string) error {
		return run(ctx, args[0], args[1], serverless)
	})
}

func run(ctx context.Context, bld, runDir string, serverless Serverless) error {
	log := launch.NewLog(os.Stderr)
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	rc, err := chaincode.ReadRunConfig(runDir)
	if err != nil {
		return err
	}
	img, err := chaincode.ReadImageRef(filepath.Join(bld, chaincode.ImageFile))
	if err != nil {
		return err
	}
	info, err := chaincode.ReadBuildInfo(bld)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	p, err := podspec.Resolve(cfg, img, info, filepath.Join(bld, chaincode.BuildInfoFile), rc, host)
	if err != nil {
		return err
	}
	if p.Mode.Serverless() && serverless == nil {
		return fmt.Errorf("%s: launch mode job needs bin/run; %s launches resident chaincode only", bld, PodOnlyName)
	}
	if !p.Mode.Serverless() && serverless != nil {
		// A resident launch lives as long as its chaincode; hand it to the lean
		// build beside this one (no relay, no gRPC: a third less memory per chaincode).
		if err := execPodOnly(); err != nil {
			log.Printf("warning: %v; going on in %s", err, os.Args[0])
		}
	}
	kc, err := kube.Connect(cfg)
	if err != nil {
		return err
	}
	if p.Mode.Serverless() {
		err = serverless(ctx, kc, p, rc, log, host)
	} else {
		l := &launch.Launcher{Kube: kc, Params: p, Log: log, PeerPod: launch.FindPeerPod(ctx, kc, cfg, host)}
		err = l.RunResident(ctx)
	}
	var exit *launch.ExitError
	if errors.As(err, &exit) {
		if exit.Code == 0 {
			return nil
		}
		return &hook.ExitError{Code: exit.Code, Err: err}
	}
	return err
}

// execPodOnly replaces this process with run-pod, same arguments and environment: the
// peer keeps the same pid to signal. It returns only if that cannot be done; a
// missing run-pod is no error (run does the launch itself).
func execPodOnly() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find %s: %w", PodOnlyName, err)
	}
	lean := filepath.Join(filepath.Dir(self), PodOnlyName)
	if _, err := os.Stat(lean); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := syscall.Exec(lean, os.Args, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", lean, err)
	}
	return nil
}
