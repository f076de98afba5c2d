package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kubecc/kubecc/pkg/image"
)

const goroot = "/usr/local/go" // GOROOT inside the image

// goToolchain is the Go image's contents: src (a static GOROOT; "" asks go) without the
// top-level folders of the comma list exclude and without testdata folders.
func goToolchain(src, exclude string, caData []byte) (toolchain, error) {
	if src == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			return toolchain{}, fmt.Errorf("go env GOROOT: %w (set -goroot)", err)
		}
		src = strings.TrimSpace(string(out))
	}
	version, err := goVersion(src)
	if err != nil {
		return toolchain{}, err
	}
	arch, err := toolArch(src)
	if err != nil {
		return toolchain{}, err
	}
	skip := map[string]bool{}
	for _, s := range strings.Split(exclude, ",") {
		if s = strings.Trim(strings.TrimSpace(s), "/"); s != "" {
			skip[s] = true
		}
	}
	rootEntries, err := tree(src, goroot, func(rel string, d fs.DirEntry) bool {
		return d.IsDir() && (skip[rel] || d.Name() == "testdata")
	})
	if err != nil {
		return toolchain{}, err
	}
	return toolchain{
		source:  fmt.Sprintf("%s (%s)", src, version),
		arch:    arch,
		title:   "golang",
		version: strings.TrimPrefix(version, "go"),
		desc:    "Go toolchain " + version + " (static GOROOT, CGO_ENABLED=0, user 10001, no shell)",
		layers: []image.Contents{
			{Entries: system("build", caData), CreatedBy: "toolimage: users, CA bundle, /tmp"},
			{Entries: rootEntries, CreatedBy: "toolimage: Go toolchain " + version + " in " + goroot},
		},
		env: []string{
			"PATH=" + goroot + "/bin:/usr/local/bin:/usr/bin:/bin",
			"HOME=/tmp",
			"GOPATH=/tmp/go",
			"GOMODCACHE=/tmp/go/pkg/mod",
			"GOCACHE=/tmp/go-build",
			"GOTOOLCHAIN=local",
			"CGO_ENABLED=0",
		},
		cmd: []string{"go", "version"},
	}, nil
}

// goVersion reads the toolchain's version (e.g. go1.26.8) from the first line of GOROOT/VERSION.
func goVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		return "", fmt.Errorf("not a Go release GOROOT: %w", err)
	}
	v, _, _ := strings.Cut(string(b), "\n")
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "go") {
		return "", fmt.Errorf("%s/VERSION: unexpected first line %q", root, v)
	}
	return v, nil
}

// toolArch is the architecture of the toolchain's host tools: GOROOT/pkg/tool/linux_ARCH.
func toolArch(root string) (string, error) {
	m, err := filepath.Glob(filepath.Join(root, "pkg", "tool", "linux_*"))
	if err != nil || len(m) != 1 {
		return "", fmt.Errorf("%s/pkg/tool: want exactly one linux_* folder, found %v", root, m)
	}
	return strings.TrimPrefix(filepath.Base(m[0]), "linux_"), nil
}
