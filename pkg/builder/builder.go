// Package builder is the build pipeline shared by the build hook and the CLI: a
// chaincode package in, an image pinned by digest in the registry out.
package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/fsutil"
	"github.com/kubecc/kubecc/pkg/gobuild"
	"github.com/kubecc/kubecc/pkg/image"
)

// Builder builds chaincode images.
type Builder struct {
	Config   *config.Config
	Registry *image.Registry
	// Env is the environment the Go toolchain starts from.
	Env []string
	// Log receives progress lines.
	Log    io.Writer
	Limits chaincode.Limits
}

// New returns a Builder for cfg that logs to log.
func New(cfg *config.Config, log io.Writer) *Builder {
	return &Builder{
		Config:   cfg,
		Registry: &image.Registry{Insecure: cfg.Insecure},
		Env:      os.Environ(),
		Log:      log,
		Limits:   chaincode.DefaultLimits,
	}
}

// Input is an unpacked package.
type Input struct {
	SrcDir    string // the unpacked code.tar.gz
	Metadata  *chaincode.Metadata
	PackageID string // label:hash when known
}

// Result is the image a build produced or found.
type Result struct {
	Image       chaincode.ImageRef
	ContentHash string
	Reused      bool // the registry already held it; nothing was compiled
	Size        int64
	Info        chaincode.BuildInfo
}

func (b *Builder) logf(format string, args ...any) {
	if b.Log != nil {
		_, _ = fmt.Fprintf(b.Log, "kubecc: "+format+"\n", args...)
	}
}

// Build produces the image for in.
func (b *Builder) Build(ctx context.Context, in Input) (*Result, error) {
	var optsDir string
	var build func(context.Context, Input) (*Result, error)
	switch in.Metadata.Kind() {
	case chaincode.KindImage:
		optsDir, build = in.SrcDir, b.resolveImage
	case chaincode.KindGo:
		optsDir, build = chaincode.GoPackageDir(in.SrcDir, in.Metadata.Path), b.buildGo
	default:
		return nil, chaincode.ErrNotOurs
	}
	// The package's launch choice is checked before any work is done.
	opts, err := chaincode.ReadOptions(optsDir)
	if err != nil {
		return nil, err
	}
	res, err := build(ctx, in)
	if err != nil {
		return nil, err
	}
	res.Info.Launch, res.Info.IdleTimeout = opts.Launch, opts.IdleTimeout
	if opts.Launch != "" {
		b.logf("package asks for launch mode %s (idle timeout %q)", opts.Launch, opts.IdleTimeout)
	}
	return res, nil
}

func (b *Builder) resolveImage(ctx context.Context, in Input) (*Result, error) {
	path := filepath.Join(in.SrcDir, chaincode.ImageFile)
	ref, err := chaincode.ReadImageRef(path)
	if err != nil {
		return nil, err
	}
	repo, digest, err := b.Registry.Resolve(ctx, ref.Ref())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if ref.Digest == "" {
		b.logf("pinned %s to %s", ref.Name, digest)
	}
	res := &Result{Image: chaincode.ImageRef{Name: repo, Digest: digest}, Reused: true, Info: chaincode.BuildInfo{Type: in.Metadata.Type}}
	// Images kubecc built run the Go shim, which reads the peer address only from a
	// flag; other images get the address from the environment alone.
	img, err := b.Registry.Image(ctx, repo+"@"+digest, v1.Platform{OS: "linux", Architecture: b.Config.GOARCH})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%s: image config of %s: %w", path, ref.Name, err)
	}
	res.Info.PeerAddressArg = cf.Config.Labels[image.LabelBuilder] == "kubecc"
	return res, nil
}

var repoUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// RepoName turns a package label into a valid repository path component.
func RepoName(label string) string {
	n := strings.Trim(repoUnsafe.ReplaceAllString(strings.ToLower(label), "-"), "-")
	if n == "" {
		n = "chaincode"
	}
	if len(n) > 100 {
		n = strings.TrimRight(n[:100], "-")
	}
	return n
}

// created is SOURCE_DATE_EPOCH, or the epoch: an image's date must not depend on
// when it was built, or two peers would push different digests.
func (b *Builder) created() (time.Time, error) {
	for _, kv := range b.Env {
		if v, ok := strings.CutPrefix(kv, "SOURCE_DATE_EPOCH="); ok && v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("env SOURCE_DATE_EPOCH: want seconds since 1970, got %q", v)
			}
			return time.Unix(n, 0).UTC(), nil
		}
	}
	return time.Unix(0, 0).UTC(), nil
}

func (b *Builder) base(ctx context.Context) (v1.Image, string, error) {
	arch := b.Config.GOARCH
	if b.Config.BaseImage == "" {
		img, err := image.Base(arch)
		return img, "builtin-v1", err
	}
	img, err := b.Registry.Image(ctx, b.Config.BaseImage, v1.Platform{OS: "linux", Architecture: arch})
	if err != nil {
		return nil, "", fmt.Errorf("base image: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, "", fmt.Errorf("base image %s: %w", b.Config.BaseImage, err)
	}
	return img, d.String(), nil
}

func (b *Builder) buildGo(ctx context.Context, in Input) (*Result, error) {
	if b.Config.Registry == "" {
		return nil, fmt.Errorf("config key registry (env KUBECC_REGISTRY) is not set: kubecc needs a registry to push Go chaincode images to")
	}
	start := time.Now()
	created, err := b.created()
	if err != nil {
		return nil, err
	}
	base, baseID, err := b.base(ctx)
	if err != nil {
		return nil, err
	}
	hash, err := chaincode.ContentHash(in.Metadata, in.SrcDir, b.Limits,
		"goarch="+b.Config.GOARCH, "base="+baseID, "created="+strconv.FormatInt(created.Unix(), 10))
	if err != nil {
		return nil, err
	}
	goInfo := chaincode.BuildInfo{Type: strings.ToLower(in.Metadata.Type), PeerAddressArg: true}
	repo := b.Config.Registry + "/" + RepoName(in.Metadata.Label)
	tagged := repo + ":" + hash
	if desc, err := b.Registry.Head(ctx, tagged); err != nil {
		return nil, err
	} else if desc != nil {
		b.logf("registry already holds %s@%s for this package: reused, nothing compiled (%s)", repo, desc.Digest, since(start))
		return &Result{Image: chaincode.ImageRef{Name: repo, Digest: desc.Digest.String()}, ContentHash: hash, Reused: true, Size: desc.Size, Info: goInfo}, nil
	}

	work, err := os.MkdirTemp("", "kubecc-build-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	bin := filepath.Join(work, "chaincode")
	b.logf("compiling %s", in.Metadata.Path)
	if err := gobuild.Build(ctx, gobuild.Options{SrcDir: in.SrcDir, Path: in.Metadata.Path, GOARCH: b.Config.GOARCH, Out: bin, Env: b.Env, Log: b.Log}); err != nil {
		return nil, err
	}
	b.logf("compiled in %s", since(start))
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	labels := map[string]string{
		image.LabelLabel:       in.Metadata.Label,
		image.LabelType:        strings.ToLower(in.Metadata.Type),
		image.LabelContentHash: hash,
		image.LabelBuilder:     "kubecc",
	}
	if in.PackageID != "" {
		labels[image.LabelPackageID] = in.PackageID
	}
	annotations := map[string]string{
		"org.opencontainers.image.created":  created.Format(time.RFC3339),
		"org.opencontainers.image.title":    in.Metadata.Label,
		"org.opencontainers.image.revision": hash,
	}
	if in.Metadata.Path != "" {
		annotations["org.opencontainers.image.source"] = in.Metadata.Path
	}
	img, err := image.Assemble(base, image.Spec{Binary: data, Labels: labels, Annotations: annotations, Created: created, Arch: b.Config.GOARCH})
	if err != nil {
		return nil, err
	}
	digest, err := b.Registry.Push(ctx, tagged, img)
	if err != nil {
		return nil, err
	}
	size, _ := Size(img)
	b.logf("pushed %s@%s (%d bytes compressed) in %s", repo, digest, size, since(start))
	return &Result{Image: chaincode.ImageRef{Name: repo, Digest: digest.String()}, ContentHash: hash, Size: size, Info: goInfo}, nil
}

// Size is the compressed size of an image: manifest, config and layers.
func Size(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	total := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	return total, nil
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

// WriteOutput writes the build output folder: image.json and a copy of META-INF/.
// Each piece is written beside its final name and renamed, so a failed build leaves
// nothing the release or run hooks could mistake for a result.
func WriteOutput(outDir, srcDir string, res *Result) error {
	meta := filepath.Join(srcDir, "META-INF")
	if info, err := os.Stat(meta); err == nil && info.IsDir() {
		tmp, err := os.MkdirTemp(outDir, ".META-INF-")
		if err != nil {
			return fmt.Errorf("build output: %w", err)
		}
		if err := fsutil.CopyTree(meta, tmp); err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("copy META-INF: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(outDir, "META-INF")); err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("build output: %w", err)
		}
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(outDir, chaincode.BuildInfoFile), res.Info.Marshal(), 0o644); err != nil {
		return err
	}
	// image.json last: its presence marks a complete output.
	return fsutil.WriteFileAtomic(filepath.Join(outDir, chaincode.ImageFile), res.Image.Marshal(), 0o644)
}
