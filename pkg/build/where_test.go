package build

import (
	"context"
	"errors"
	"testing"

	"github.com/kubecc/kubecc/pkg/config"
)

type namedRunner string

func (n namedRunner) Run(context.Context, *Plan) (*Result, error) {
	return &Result{ContentHash: string(n)}, nil
}

type toolLang struct {
	Language
	runsCode bool
}

func (toolLang) Toolchain() string       { return "go" }
func (l toolLang) RunsPackageCode() bool { return l.runsCode }

func TestWhereChoosesByModeAndToolchain(t *testing.T) {
	found := func(string) (string, error) { return "/usr/bin/go", nil }
	missing := func(string) (string, error) { return "", errors.New("not found") }
	for _, tc := range []struct {
		mode    string
		look    func(string) (string, error)
		cluster Runner
		want    string
	}{
		{config.BuildAuto, found, namedRunner("cluster"), "local"},
		{config.BuildAuto, missing, namedRunner("cluster"), "cluster"},
		{config.BuildAuto, missing, nil, "local"},
		{config.BuildLocal, missing, namedRunner("cluster"), "local"},
		{config.BuildCluster, found, namedRunner("cluster"), "cluster"},
	} {
		w := &Where{Mode: tc.mode, Local: namedRunner("local"), Cluster: tc.cluster, LookPath: tc.look}
		res, err := w.Run(context.Background(), &Plan{Language: toolLang{}})
		if err != nil || res.ContentHash != tc.want {
			t.Errorf("mode %s: ran %v (%v), want %s", tc.mode, res, err, tc.want)
		}
	}
	// A language whose build runs package code builds in the cluster unless told local.
	for mode, want := range map[string]string{config.BuildAuto: "cluster", config.BuildLocal: "local"} {
		w := &Where{Mode: mode, Local: namedRunner("local"), Cluster: namedRunner("cluster"), LookPath: found}
		if res, err := w.Run(context.Background(), &Plan{Language: toolLang{runsCode: true}}); err != nil || res.ContentHash != want {
			t.Errorf("npm-like language, mode %s: ran %v (%v), want %s", mode, res, err, want)
		}
	}
	if _, err := (&Where{Mode: config.BuildCluster, Local: namedRunner("local")}).Run(context.Background(), &Plan{Language: toolLang{}}); err == nil {
		t.Error("cluster mode without a cluster runner built locally")
	}
}
