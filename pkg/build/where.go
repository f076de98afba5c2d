package build

import (
	"context"
	"fmt"
	"io"
	"os/exec"

	"github.com/kubecc/kubecc/pkg/config"
)

// Where chooses, per build, where it runs: config buildIn says local, cluster, or
// auto: in the cluster for a language whose build runs package code (Node.js), else
// here when the language's toolchain is on PATH, else in the cluster. Both run the
// same pipeline on the same inputs.
type Where struct {
	Mode    string // config.BuildLocal, BuildCluster or BuildAuto
	Local   Runner
	Cluster Runner // nil: no cluster builds (the CLI outside a cluster)
	Log     io.Writer
	// LookPath finds a toolchain (exec.LookPath).
	LookPath func(string) (string, error)
}

// Run runs p where it should.
func (w *Where) Run(ctx context.Context, p *Plan) (*Result, error) {
	mode := w.Mode
	if mode == config.BuildAuto || mode == "" {
		mode = config.BuildCluster
		look := w.LookPath
		if look == nil {
			look = exec.LookPath
		}
		_, err := look(p.Language.Toolchain())
		if w.Cluster == nil || (err == nil && !p.Language.RunsPackageCode()) {
			mode = config.BuildLocal
		}
	}
	if mode == config.BuildCluster {
		if w.Cluster == nil {
			return nil, fmt.Errorf("config key buildIn: cluster builds are not available here")
		}
		logf(w.Log, "building in the cluster (buildIn %s)", w.Mode)
		return w.Cluster.Run(ctx, p)
	}
	return w.Local.Run(ctx, p)
}
