package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/image"
)

// Local compiles on this host and pushes from here.
type Local struct {
	Registry *image.Registry
	Log      io.Writer
}

// Run compiles p's package, assembles the image on p's base and pushes it.
func (l *Local) Run(ctx context.Context, p *Plan) (*Result, error) {
	start := time.Now()
	work, err := os.MkdirTemp("", "kubecc-build-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	l.logf("compiling %s", p.Input.Metadata.Path)
	spec, err := p.Language.Compile(ctx, p.Input.SrcDir, p.Input.Metadata, work)
	if err != nil {
		return nil, err
	}
	l.logf("compiled in %s", since(start))
	spec.Labels, spec.Annotations, spec.Created = p.Labels, p.Annotations, p.Created
	img, err := image.Assemble(p.Base, spec)
	if err != nil {
		return nil, err
	}
	counted, up := image.CountUploads(img)
	digest, err := l.Registry.Push(ctx, p.Tag, counted)
	if err != nil {
		return nil, err
	}
	size, _ := image.Size(img)
	// What went over the wire tells the operator whether layer reuse works (an
	// unchanged dependency layer is not sent again).
	l.logf("pushed %s@%s (%d bytes compressed; uploaded %d layers, %d bytes) in %s", p.Repo, digest, size, up.Layers(), up.Bytes(), since(start))
	return &Result{Image: chaincode.ImageRef{Name: p.Repo, Digest: digest.String()}, Size: size}, nil
}

func (l *Local) logf(format string, args ...any) { logf(l.Log, format, args...) }
