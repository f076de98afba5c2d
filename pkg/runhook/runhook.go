// Package runhook is the run hook shared by two binaries: run, which launches
// resident chaincode and leaves the serverless relay (and gRPC) out, and
// run-serverless, which links the relay. Each main passes what it links. The peer
// calls run; a resident launch, the common case and the one a peer restart waits for
// once per chaincode, so starts no second program: every package a binary links adds
// to its start-up before main runs.
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

// ServerlessName is the build with the relay that serves job-mode launches; make
// puts it beside run.
const ServerlessName = "run-serverless"

// Serverless runs a job-mode launch (serverless.Run).
type Serverless func(ctx context.Context, kc kube.Client, p *podspec.Params, rc *chaincode.RunConfig, log *launch.Log, host string) error

// Main is the run hook. serverless is nil in run.
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
		// Same pid for the peer to signal, same arguments and environment.
		return execServerless(bld)
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

// execServerless replaces this process with run-serverless; it returns only if that
// cannot be done.
func execServerless(bld string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%s: launch mode job: find %s: %w", bld, ServerlessName, err)
	}
	next := filepath.Join(filepath.Dir(self), ServerlessName)
	if err := syscall.Exec(next, os.Args, os.Environ()); err != nil {
		return fmt.Errorf("%s: launch mode job needs %s beside %s: exec: %w", bld, ServerlessName, self, err)
	}
	return nil
}
