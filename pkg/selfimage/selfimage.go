// Package selfimage builds kubecc's own image: the four hooks, run-serverless and the CLI
// under /opt/kubecc/bin, and the small install command that copies them into a volume
// (the image has no shell, so no cp). An init container from this image is how kubecc
// gets into a stock peer Pod; the same files layered on a peer image make a custom one.
package selfimage

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubecc/kubecc/pkg/image"
)

// Paths in the image.
const (
	Dir     = "/opt/kubecc"
	BinDir  = Dir + "/bin"
	Install = Dir + "/install"
)

// Binaries lists what goes under /opt/kubecc/bin: the hooks the peer calls,
// run-serverless (which run hands job-mode launches to) and the CLI (build Jobs run it).
func Binaries() []string {
	return []string{"detect", "build", "release", "run", "run-serverless", "kubecc"}
}

// InstallBinary is the name of the copier in bin/ of a kubecc build.
const InstallBinary = "kubecc-install"

// Options of the image.
type Options struct {
	// BinDir holds the binaries (make's bin/).
	BinDir string
	// Base to layer on; nil: an empty image (the files alone, user 65532).
	Base v1.Image
	// Version, Revision and Source go into OCI annotations and labels.
	Version, Revision, Source string
	// Created dates the image (SOURCE_DATE_EPOCH): the same commit gives the same digest.
	Created time.Time
	Arch    string
}

// Build assembles the image from opts.BinDir.
func Build(opts Options) (v1.Image, error) {
	var entries []image.Entry
	for _, name := range Binaries() {
		e, err := entry(filepath.Join(opts.BinDir, name), BinDir+"/"+name)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	inst, err := entry(filepath.Join(opts.BinDir, InstallBinary), Install)
	if err != nil {
		return nil, err
	}
	entries = append(entries, inst)
	// On kubecc's own empty base the installer is the entry point; layered onto a
	// peer image, the peer's entry point, command and user stay.
	base, entrypoint := opts.Base, []string(nil)
	if base == nil {
		if base, err = image.Scratch(opts.Arch); err != nil {
			return nil, err
		}
		entrypoint = []string{Install}
	}
	annotations := map[string]string{
		"org.opencontainers.image.title":    "kubecc",
		"org.opencontainers.image.created":  opts.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.version":  opts.Version,
		"org.opencontainers.image.revision": opts.Revision,
		"org.opencontainers.image.source":   opts.Source,
	}
	labels := map[string]string{}
	for k, v := range annotations {
		if v != "" {
			labels[k] = v
		} else {
			delete(annotations, k)
		}
	}
	return image.Assemble(base, image.Spec{
		Layers:      []image.Contents{{Entries: entries, CreatedBy: "kubecc: hooks, CLI and installer"}},
		Entrypoint:  entrypoint,
		Labels:      labels,
		Annotations: annotations,
		Created:     opts.Created,
		Arch:        opts.Arch,
	})
}

func entry(path, inImage string) (image.Entry, error) {
	info, err := os.Stat(path)
	if err != nil {
		return image.Entry{}, fmt.Errorf("kubecc image: %w (run make first)", err)
	}
	if !info.Mode().IsRegular() {
		return image.Entry{}, fmt.Errorf("kubecc image: %s is not a regular file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return image.Entry{}, fmt.Errorf("kubecc image: %w", err)
	}
	return image.Entry{Path: inImage, Mode: 0o755, Data: data}, nil
}
