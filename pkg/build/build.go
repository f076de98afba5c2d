// Package build is the build pipeline shared by the build hook and the CLI: a
// chaincode package in, an image pinned by digest in the registry out.
//
// Two seams make it extensible. A Language says how one language's source becomes
// layers on a base image (Go in build/golang). A Runner says where that happens and
// how the image reaches the registry: Local compiles here; a runner that builds in a
// Kubernetes Job fits the same place. Everything the languages share stays here:
// the content hash, reuse of an image the registry already holds, the base, labels,
// annotations, assembly and push.
package build

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/image"
	"github.com/kubecc/kubecc/pkg/names"
)

// Interface builds a package into an image in the registry.
type Interface interface {
	Build(ctx context.Context, in Input) (*Result, error)
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

// Language is how one language's source package becomes an image.
type Language interface {
	// Type is the metadata.json type the language builds, in lower case ("golang").
	Type() string
	// Toolchain is the command a local build runs ("go"): buildIn auto builds here
	// when it is on PATH.
	Toolchain() string
	// RunsPackageCode reports whether building runs code the package chooses (npm's
	// install and build scripts): buildIn auto then builds in the cluster, never on
	// the peer host.
	RunsPackageCode() bool
	// SourceDir is the folder of the package's main code, where its kubecc.yaml
	// lives; srcDir is the unpacked code.tar.gz.
	SourceDir(srcDir string, md *chaincode.Metadata) string
	// Base is the image the language's layers go on, and a stable name of it for the
	// content hash.
	Base(ctx context.Context) (v1.Image, string, error)
	// Check refuses a package the language would not build, or that would read or run
	// anything outside itself: before any work, wherever the build then runs.
	Check(srcDir string, md *chaincode.Metadata) error
	// HashKeys are the settings other than the base that change the image.
	HashKeys() []string
	// Info tells run how to start images of this language.
	Info() chaincode.BuildInfo
	// Compile builds the package unpacked in srcDir, in work (a private temporary
	// folder), into what goes on the base: layers, entry point, environment.
	Compile(ctx context.Context, srcDir string, md *chaincode.Metadata, work string) (image.Spec, error)
}

// Plan is one build the registry does not hold yet: everything needed to produce the
// image and push it under Tag.
type Plan struct {
	Input    Input
	Language Language
	Hash     string
	Repo     string
	Tag      string // Repo:Hash
	Base     v1.Image
	Created  time.Time
	Labels   map[string]string
	// Annotations are the OCI annotations of the manifest.
	Annotations map[string]string
}

// Runner produces and pushes the image of a plan.
type Runner interface {
	Run(ctx context.Context, p *Plan) (*Result, error)
}

// Pipeline is the build shared by every language and runner.
type Pipeline struct {
	Config    *config.Config
	Registry  *image.Registry
	Languages []Language
	Runner    Runner
	// Env is the hook's environment; only SOURCE_DATE_EPOCH is read from it here.
	Env    []string
	Log    io.Writer
	Limits chaincode.Limits
}

func (b *Pipeline) logf(format string, args ...any) { logf(b.Log, format, args...) }

// logf writes one progress line to the hook's stderr (the peer's log), if any.
func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		_, _ = fmt.Fprintf(w, "kubecc: "+format+"\n", args...)
	}
}

func (b *Pipeline) language(md *chaincode.Metadata) Language {
	t := strings.ToLower(md.Type)
	for _, l := range b.Languages {
		if l.Type() == t {
			return l
		}
	}
	return nil
}

// Build produces the image for in.
func (b *Pipeline) Build(ctx context.Context, in Input) (*Result, error) {
	var optsDir string
	var build func(context.Context, Input) (*Result, error)
	lang := b.language(in.Metadata)
	switch {
	case in.Metadata.Kind() == chaincode.KindImage:
		optsDir, build = in.SrcDir, b.resolveImage
	case lang != nil:
		optsDir = lang.SourceDir(in.SrcDir, in.Metadata)
		build = func(ctx context.Context, in Input) (*Result, error) { return b.buildSource(ctx, lang, in) }
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

// RepoName turns a package label into a valid repository path component.
func RepoName(label string) string { return names.Slug(label, 100, "chaincode") }

// created is SOURCE_DATE_EPOCH, or the epoch: an image's date must not depend on
// when it was built, or two peers would push different digests.
func (b *Pipeline) created() (time.Time, error) {
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

// buildSource finds the package's image in the registry by content hash, or plans
// and runs its build.
func (b *Pipeline) buildSource(ctx context.Context, lang Language, in Input) (*Result, error) {
	if b.Config.Registry == "" {
		return nil, fmt.Errorf("config key registry (env KUBECC_REGISTRY) is not set: kubecc needs a registry to push chaincode images to")
	}
	if err := lang.Check(in.SrcDir, in.Metadata); err != nil {
		return nil, err
	}
	start := time.Now()
	created, err := b.created()
	if err != nil {
		return nil, err
	}
	base, baseID, err := lang.Base(ctx)
	if err != nil {
		return nil, err
	}
	keys := append(lang.HashKeys(), "base="+baseID, "created="+strconv.FormatInt(created.Unix(), 10))
	hash, err := chaincode.ContentHash(in.Metadata, in.SrcDir, b.Limits, keys...)
	if err != nil {
		return nil, err
	}
	info := lang.Info()
	repo := b.Config.Registry + "/" + RepoName(in.Metadata.Label)
	tagged := repo + ":" + hash
	if desc, err := b.Registry.Head(ctx, tagged); err != nil {
		return nil, err
	} else if desc != nil {
		b.logf("registry already holds %s@%s for this package: reused, nothing compiled (%s)", repo, desc.Digest, since(start))
		return &Result{Image: chaincode.ImageRef{Name: repo, Digest: desc.Digest.String()}, ContentHash: hash, Reused: true, Size: desc.Size, Info: info}, nil
	}
	labels := map[string]string{
		image.LabelLabel:       in.Metadata.Label,
		image.LabelType:        lang.Type(),
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
	plan := &Plan{Input: in, Language: lang, Hash: hash, Repo: repo, Tag: tagged, Base: base, Created: created, Labels: labels, Annotations: annotations}
	res, err := b.Runner.Run(ctx, plan)
	if err != nil {
		return nil, err
	}
	res.ContentHash, res.Info = hash, info
	return res, nil
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }
