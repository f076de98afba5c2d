// Package builders puts the build pipeline together for the build hook and the CLI:
// every language kubecc builds, and where builds run (here, or in Kubernetes Jobs).
package builders

import (
	"io"
	"os"

	"github.com/kubecc/kubecc/pkg/build"
	"github.com/kubecc/kubecc/pkg/build/cluster"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/kube"
)

// New returns the pipeline for cfg, logging to log. Builds run where cfg's buildIn
// says; a cluster build connects to the cluster only when it starts.
func New(cfg *config.Config, log io.Writer) *build.Pipeline {
	p := build.New(cfg, log)
	host, _ := os.Hostname()
	p.Runner = &build.Where{
		Mode:  cfg.BuildIn,
		Local: p.Runner,
		Cluster: &cluster.Runner{
			Config:   cfg,
			Registry: p.Registry,
			Connect:  func() (kube.Client, error) { return kube.Connect(cfg) },
			Host:     host,
			Log:      log,
		},
		Log: log,
	}
	return p
}
