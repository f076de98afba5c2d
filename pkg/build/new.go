package build

import (
	"io"
	"os"

	"github.com/kubecc/kubecc/pkg/build/golang"
	"github.com/kubecc/kubecc/pkg/build/node"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/image"
)

// New returns the pipeline for cfg with every language kubecc builds, compiling
// here, logging to log.
func New(cfg *config.Config, log io.Writer) *Pipeline {
	reg := &image.Registry{Insecure: cfg.Insecure}
	env := os.Environ()
	return &Pipeline{
		Config:   cfg,
		Registry: reg,
		Languages: []Language{
			golang.New(cfg, reg, env, log),
			node.New(cfg, reg, env, log),
		},
		Runner: &Local{Registry: reg, Log: log},
		Env:    env,
		Log:    log,
		Limits: chaincode.DefaultLimits(),
	}
}
