package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubecc/kubecc/pkg/image"
)

// p1Profile times, in process and without changing kubecc, the steps kubecc's
// builder takes after the compile (image.Assemble, the digests, remote.Write), and
// the plain `go build` with kubecc's and ko's ldflags, so that the figures above
// can be attributed.
type p1Profile struct {
	goStripped, goDefault              Sample // go build wall time, -s -w / ko's default
	binStripped, binDefault            int64  // binary sizes
	assemble, digest, push             Sample // kubecc's steps
	gzDefault, gzFast                  Sample // gzip of the binary layer's tar: default level (kubecc), BestSpeed (ko)
	gzDefaultSize, gzFastSize, tarSize int64
}

func runP1Profile(ctx context.Context, env *Env, src, base string, goEnv []string) (*p1Profile, error) {
	p := &p1Profile{}
	work, err := os.MkdirTemp("", "kubecc-bench-p1-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(work) }()
	goEnv = withEnv(goEnv, "GOOS=linux", "GOARCH=amd64")
	stripped, unstripped := filepath.Join(work, "stripped"), filepath.Join(work, "default")
	for i := 0; i < env.N; i++ {
		for _, b := range []struct {
			out   string
			args  []string
			into  *Sample
			bytes *int64
		}{
			{stripped, []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-mod=readonly", "-o", stripped, "."}, &p.goStripped, &p.binStripped},
			{unstripped, []string{"build", "-trimpath", "-buildvcs=false", "-mod=readonly", "-o", unstripped, "."}, &p.goDefault, &p.binDefault},
		} {
			_ = os.Remove(b.out)
			t, err := timed(ctx, src, goEnv, "go", b.args...)
			if err != nil {
				return nil, err
			}
			*b.into = append(*b.into, t.Wall.Seconds())
			if info, err := os.Stat(b.out); err == nil {
				*b.bytes = info.Size()
			}
		}
	}
	data, err := os.ReadFile(stripped)
	if err != nil {
		return nil, err
	}
	baseRef, err := name.ParseReference(base, name.Insecure)
	if err != nil {
		return nil, err
	}
	baseImg, err := remote.Image(baseRef, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", base, err)
	}
	labels := map[string]string{image.LabelLabel: "go", image.LabelType: "golang", image.LabelBuilder: "kubecc"}
	for i := 0; i < env.N; i++ {
		t0 := time.Now()
		img, err := image.Assemble(baseImg, image.Spec{Layers: []image.Contents{image.Binary(data)}, Entrypoint: []string{image.BinaryPath}, User: image.User, Labels: labels, Created: time.Unix(0, 0).UTC(), Arch: "amd64"})
		if err != nil {
			return nil, err
		}
		t1 := time.Now()
		if _, err := img.Digest(); err != nil {
			return nil, err
		}
		t2 := time.Now()
		dst, err := name.ParseReference(fmt.Sprintf("%s/bench-profile-%s-%d/go:latest", env.Registry, env.RunID, i), name.Insecure)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
			return nil, fmt.Errorf("push %s: %w", dst, err)
		}
		t3 := time.Now()
		p.assemble = append(p.assemble, t1.Sub(t0).Seconds())
		p.digest = append(p.digest, t2.Sub(t1).Seconds())
		p.push = append(p.push, t3.Sub(t2).Seconds())
	}

	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(image.BinaryPath, "/"), Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	p.tarSize = int64(tb.Len())
	for i := 0; i < env.N; i++ {
		for _, c := range []struct {
			level int
			into  *Sample
			size  *int64
		}{{gzip.DefaultCompression, &p.gzDefault, &p.gzDefaultSize}, {gzip.BestSpeed, &p.gzFast, &p.gzFastSize}} {
			var out bytes.Buffer
			t0 := time.Now()
			gz, err := gzip.NewWriterLevel(&out, c.level)
			if err != nil {
				return nil, err
			}
			if _, err := gz.Write(tb.Bytes()); err != nil {
				return nil, err
			}
			if err := gz.Close(); err != nil {
				return nil, err
			}
			*c.into = append(*c.into, time.Since(t0).Seconds())
			*c.size = int64(out.Len())
		}
	}
	return p, nil
}

func (p *p1Profile) Markdown() string {
	var b strings.Builder
	b.WriteString("\nkubecc's steps timed one by one in process (same binary, same base, fresh repository each time; kubecc's code unchanged):\n\n")
	b.WriteString("| step | time | note |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| `go build -trimpath -ldflags=-s -w` (kubecc's flags), warm cache | %s | binary %s |\n", p.goStripped.Format(secs), mib(float64(p.binStripped)))
	fmt.Fprintf(&b, "| `go build -trimpath` (ko's default flags), warm cache | %s | binary %s |\n", p.goDefault.Format(secs), mib(float64(p.binDefault)))
	fmt.Fprintf(&b, "| `image.Assemble`: tar + gzip of the binary layer, config | %s | |\n", p.assemble.Format(secs))
	fmt.Fprintf(&b, "| image digest afterwards | %s | already computed inside `Assemble` (the config needs the layer diff ID) |\n", p.digest.Format(secs))
	fmt.Fprintf(&b, "| `remote.Write` to a fresh repository | %s | |\n", p.push.Format(secs))
	fmt.Fprintf(&b, "| gzip of the layer tar (%s), default level (kubecc) | %s | %s |\n", mib(float64(p.tarSize)), p.gzDefault.Format(secs), mib(float64(p.gzDefaultSize)))
	fmt.Fprintf(&b, "| gzip of the same tar, BestSpeed (ko, go-containerregistry's default) | %s | %s |\n", p.gzFast.Format(secs), mib(float64(p.gzFastSize)))
	return b.String()
}
