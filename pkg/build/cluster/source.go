package cluster

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/image"
)

// The layout of a source artifact: the package's metadata.json as the peer passed it
// and its code.tar.gz's tree under code/.
const (
	sourceMetadata = "metadata.json"
	sourceCode     = "code"
)

// sourceImage packs an unpacked package (srcDir and its metadata.json bytes) as a
// one-layer OCI artifact: a build Job pulls it from the registry the images go to,
// so no shared volume is needed and no ConfigMap size limit applies.
func sourceImage(srcDir string, metadata []byte) (v1.Image, error) {
	entries := []image.Entry{{Path: "/" + sourceMetadata, Mode: 0o644, Data: metadata}}
	err := filepath.WalkDir(srcDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(srcDir, path)
		name := "/" + sourceCode + "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/" + sourceCode
		}
		switch {
		case d.IsDir():
			entries = append(entries, image.Entry{Path: name, Dir: true, Mode: 0o755})
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			entries = append(entries, image.Entry{Path: name, Mode: mode, Data: data})
		default:
			return fmt.Errorf("%s: %s is not a regular file", srcDir, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pack source: %w", err)
	}
	layer, err := image.Layer(entries, time.Unix(0, 0).UTC())
	if err != nil {
		return nil, fmt.Errorf("pack source: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.AppendLayers(img, layer)
}

// sourceWait bounds how long a build Job waits for its source to arrive.
const sourceWait = 30 * time.Second

// awaitSource fetches ref, waiting while the registry does not have it yet: the build
// hook pushes the source while the Job starts, and a registry tells nobody when a
// manifest arrives, so this asks again after 50 ms, doubling up to a second.
func awaitSource(ctx context.Context, reg *image.Registry, ref string, wait time.Duration) (v1.Image, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	delay := 50 * time.Millisecond
	for {
		img, err := reg.Image(ctx, ref, v1.Platform{OS: "linux", Architecture: "amd64"})
		if err == nil || !image.IsNotFound(err) {
			return img, err
		}
		next := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			next.Stop()
			return nil, ctx.Err()
		case <-deadline.C:
			next.Stop()
			return nil, fmt.Errorf("not in the registry after %s: %w", wait, err)
		case <-next.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// PullSource unpacks the source artifact ref into dir (dir/code and the metadata),
// with the same checks as a package from the peer: it is untrusted input here too.
func PullSource(ctx context.Context, reg *image.Registry, ref, dir string, limits chaincode.Limits) (*chaincode.Metadata, string, error) {
	img, err := awaitSource(ctx, reg, ref, sourceWait)
	if err != nil {
		return nil, "", fmt.Errorf("source %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, "", fmt.Errorf("source %s: %w", ref, err)
	}
	if len(layers) != 1 {
		return nil, "", fmt.Errorf("source %s: %d layers, want one", ref, len(layers))
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		return nil, "", fmt.Errorf("source %s: %w", ref, err)
	}
	defer func() { _ = rc.Close() }()
	if err := chaincode.ExtractTarGz(rc, dir, limits); err != nil {
		return nil, "", fmt.Errorf("source %s: %w", ref, err)
	}
	md, err := chaincode.ReadMetadata(dir)
	if err != nil {
		return nil, "", err
	}
	return md, filepath.Join(dir, sourceCode), nil
}
