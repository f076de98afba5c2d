package chaincode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubecc/kubecc/pkg/strictyaml"
)

// OptionsFile is a package's own launch choice. Inside the package it is part of the
// package hash, so every peer that installs the package launches it the same way.
const OptionsFile = "kubecc.yaml"

// Options is kubecc.yaml.
type Options struct {
	// Launch is "pod" (resident) or "job" (serverless).
	Launch LaunchMode `json:"launch,omitempty"`
	// IdleTimeout of job mode: "0s" ends after each burst of transactions.
	IdleTimeout string `json:"idleTimeout,omitempty"`
}

// ParseOptions validates kubecc.yaml bytes; name is used in errors.
func ParseOptions(name string, data []byte) (Options, error) {
	var o Options
	if err := strictyaml.Unmarshal(name, data, &o); err != nil {
		return o, err
	}
	if _, err := ParseLaunchMode(string(o.Launch)); err != nil {
		return o, fmt.Errorf("%s: field \"launch\": %w", name, err)
	}
	if o.IdleTimeout != "" {
		d, err := time.ParseDuration(o.IdleTimeout)
		if err != nil || d < 0 {
			return o, fmt.Errorf("%s: field \"idleTimeout\": want a duration such as 30s, got %q", name, o.IdleTimeout)
		}
	}
	return o, nil
}

// ReadOptions reads kubecc.yaml from dir; a missing file gives no options.
func ReadOptions(dir string) (Options, error) {
	path := filepath.Join(dir, OptionsFile)
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return Options{}, nil
	}
	if err != nil {
		return Options{}, fmt.Errorf("%s: %w", path, err)
	}
	if !info.Mode().IsRegular() || info.Size() > 64<<10 {
		return Options{}, fmt.Errorf("%s: not a small regular file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Options{}, fmt.Errorf("%s: %w", path, err)
	}
	return ParseOptions(path, data)
}

// GoPackageDir is the folder of the main package in an unpacked Go package: where
// `peer lifecycle chaincode package --path` pointed, and where kubecc.yaml lives.
func GoPackageDir(srcDir, importPath string) string {
	src := filepath.Join(srcDir, "src")
	if data, err := os.ReadFile(filepath.Join(src, "go.mod")); err == nil {
		mod := modulePath(data)
		switch {
		case importPath == "" || importPath == "." || importPath == mod:
			return src
		case mod != "" && strings.HasPrefix(importPath, mod+"/"):
			return filepath.Join(src, filepath.FromSlash(strings.TrimPrefix(importPath, mod+"/")))
		}
	}
	return filepath.Join(src, filepath.FromSlash(importPath))
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}
