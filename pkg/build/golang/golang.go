package golang

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/image"
)

// Type is the metadata.json type of Go packages.
const Type = "golang"

// Language builds Go chaincode into a static binary on a minimal base.
type Language struct {
	cfg *config.Config
	reg *image.Registry
	env []string
	log io.Writer
}

// New returns the Go language for cfg. env is the hook's environment, which the
// toolchain's settings are taken from; log receives the toolchain's output.
func New(cfg *config.Config, reg *image.Registry, env []string, log io.Writer) *Language {
	return &Language{cfg: cfg, reg: reg, env: env, log: log}
}

// Type is "golang".
func (*Language) Type() string { return Type }

// Toolchain is the go command.
func (*Language) Toolchain() string { return "go" }

// RunsPackageCode is false: go build runs none of the package's code.
func (*Language) RunsPackageCode() bool { return false }

// SourceDir is where `peer lifecycle chaincode package --path` pointed. A path
// that is not an import path ("../..") would lead outside the package: then it is
// src/, and Compile refuses the path with an error naming it.
func (*Language) SourceDir(srcDir string, md *chaincode.Metadata) string {
	if CheckImportPath(md.Path) != nil {
		return filepath.Join(srcDir, "src")
	}
	return chaincode.GoPackageDir(srcDir, md.Path)
}

// Check refuses what the go command must not be given: see CheckPackage.
func (*Language) Check(srcDir string, md *chaincode.Metadata) error {
	layout, err := DetectLayout(srcDir, md.Path)
	if err != nil {
		return err
	}
	return CheckPackage(srcDir, layout)
}

// HashKeys: the binary depends on GOARCH.
func (l *Language) HashKeys() []string { return []string{"goarch=" + l.cfg.GOARCH} }

// Info: the Go shim reads the peer address only from its -peer.address flag.
func (*Language) Info() chaincode.BuildInfo {
	return chaincode.BuildInfo{Type: Type, PeerAddressArg: true}
}

// Base is config's baseImage, or kubecc's built-in minimal base.
func (l *Language) Base(ctx context.Context) (v1.Image, string, error) {
	arch := l.cfg.GOARCH
	if l.cfg.BaseImage == "" {
		img, err := image.Base(arch)
		return img, "builtin-v1", err
	}
	img, digest, err := l.reg.Pinned(ctx, l.cfg.BaseImage, v1.Platform{OS: "linux", Architecture: arch})
	if err != nil {
		return nil, "", fmt.Errorf("config key baseImage: %w", err)
	}
	return img, digest, nil
}

// Compile builds the chaincode binary: one layer, the binary as entry point.
func (l *Language) Compile(ctx context.Context, srcDir string, md *chaincode.Metadata, work string) (image.Spec, error) {
	bin := filepath.Join(work, "chaincode")
	if err := Build(ctx, Options{SrcDir: srcDir, Path: md.Path, GOARCH: l.cfg.GOARCH, Out: bin, Env: l.env, Log: l.log}); err != nil {
		return image.Spec{}, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return image.Spec{}, fmt.Errorf("read binary: %w", err)
	}
	return image.Spec{Layers: []image.Contents{image.Binary(data)}, Entrypoint: []string{image.BinaryPath}, User: image.User, Arch: l.cfg.GOARCH}, nil
}
