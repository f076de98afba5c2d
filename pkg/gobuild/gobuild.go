// Package gobuild compiles the Go chaincode of a peer package with the Go toolchain
// on PATH, into a static linux binary, laid out the way the peer's own Go platform
// builds it (module at src/, module at src/<path>/, or GOPATH).
package gobuild

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Options of one build.
type Options struct {
	// SrcDir is the unpacked code.tar.gz: it holds src/.
	SrcDir string
	// Path is metadata.json's path: the import path of the main package.
	Path string
	// GOARCH of the binary.
	GOARCH string
	// Out is the binary to write.
	Out string
	// Env is the environment to start from (the hook's own, which the peer pruned).
	Env []string
	// Log receives the toolchain's output and progress lines.
	Log io.Writer
}

// Layout is how the package's source is arranged.
type Layout struct {
	Dir     string // where to run go build
	Target  string // what to build
	Module  bool
	Vendor  bool
	Summary string
}

// DetectLayout mirrors the peer's Go platform: src/go.mod, then src/<path>/go.mod,
// else GOPATH mode with SrcDir as GOPATH.
func DetectLayout(srcDir, importPath string) (Layout, error) {
	src := filepath.Join(srcDir, "src")
	if isFile(filepath.Join(src, "go.mod")) {
		target := importPath
		if target == "" {
			target = "."
		}
		return Layout{Dir: src, Target: target, Module: true, Vendor: isDir(filepath.Join(src, "vendor")), Summary: "module at src/"}, nil
	}
	if importPath == "" {
		return Layout{}, fmt.Errorf("metadata.json: field \"path\" is empty and src/go.mod does not exist")
	}
	if strings.Contains(importPath, "..") || filepath.IsAbs(importPath) {
		return Layout{}, fmt.Errorf("metadata.json: field \"path\": %q is not an import path", importPath)
	}
	pkgDir := filepath.Join(src, filepath.FromSlash(importPath))
	if isFile(filepath.Join(pkgDir, "go.mod")) {
		return Layout{Dir: pkgDir, Target: ".", Module: true, Vendor: isDir(filepath.Join(pkgDir, "vendor")), Summary: "module at src/" + importPath}, nil
	}
	if !isDir(pkgDir) {
		return Layout{}, fmt.Errorf("metadata.json: field \"path\": no src/go.mod and no folder src/%s in the package", importPath)
	}
	return Layout{Dir: srcDir, Target: importPath, Summary: "GOPATH"}, nil
}

// Build compiles the chaincode into opts.Out.
func Build(ctx context.Context, opts Options) error {
	layout, err := DetectLayout(opts.SrcDir, opts.Path)
	if err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", opts.Out}
	env := Env(opts.Env, opts.GOARCH)
	if layout.Module {
		if layout.Vendor {
			args = append(args, "-mod=vendor")
		} else {
			args = append(args, "-mod=readonly")
		}
		env = append(env, "GO111MODULE=on")
	} else {
		gopath := opts.SrcDir
		if old := lookup(env, "GOPATH"); old != "" {
			gopath += string(os.PathListSeparator) + old
		}
		env = append(env, "GO111MODULE=off", "GOPATH="+gopath)
	}
	args = append(args, layout.Target)
	if opts.Log != nil {
		_, _ = fmt.Fprintf(opts.Log, "kubecc: go %s (%s, GOARCH=%s)\n", strings.Join(args, " "), layout.Summary, opts.GOARCH)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = layout.Dir
	cmd.Env = env
	cmd.Stdout = opts.Log
	cmd.Stderr = opts.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", layout.Target, err)
	}
	return nil
}

// Env returns the toolchain environment: a static linux binary for goarch, and
// writable caches even when the peer propagated no HOME.
func Env(base []string, goarch string) []string {
	env := append([]string(nil), base...)
	env = append(env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if lookup(env, "HOME") == "" && lookup(env, "XDG_CACHE_HOME") == "" {
		root := filepath.Join(os.TempDir(), "kubecc-go")
		for key, sub := range map[string]string{"GOCACHE": "cache", "GOMODCACHE": "mod", "GOPATH": "path"} {
			if lookup(env, key) == "" {
				env = append(env, key+"="+filepath.Join(root, sub))
			}
		}
	}
	return env
}

func lookup(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as with exec
		}
	}
	return v
}

func isFile(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular()
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}
