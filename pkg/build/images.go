package build

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/image"
)

func (b *Pipeline) resolveImage(ctx context.Context, in Input) (*Result, error) {
	path := filepath.Join(in.SrcDir, chaincode.ImageFile)
	ref, err := chaincode.ReadImageRef(path)
	if err != nil {
		return nil, err
	}
	if err := b.checkRegistry(path, ref); err != nil {
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

// checkRegistry refuses an image package naming a registry outside
// allowedRegistries (when that is set) before any registry is contacted. The
// registry images are pushed to is always allowed. Hosts compare as
// go-containerregistry names them: a bare name such as busybox, and docker.io, are
// index.docker.io.
func (b *Pipeline) checkRegistry(path string, ref chaincode.ImageRef) error {
	if len(b.Config.AllowedRegistries) == 0 {
		return nil
	}
	parsed, err := name.ParseReference(ref.Ref())
	if err != nil {
		return fmt.Errorf("%s: field \"name\": %q is not an image reference: %w", path, ref.Name, err)
	}
	host := parsed.Context().RegistryStr()
	allowed := append([]string(nil), b.Config.AllowedRegistries...)
	if push, _, _ := strings.Cut(b.Config.Registry, "/"); push != "" && !slices.Contains(allowed, push) {
		allowed = append(allowed, push)
	}
	for _, a := range allowed {
		if strings.EqualFold(registryName(a), host) {
			return nil
		}
	}
	return fmt.Errorf("%s: field \"name\": registry %s is not in allowedRegistries (%s)", path, host, strings.Join(allowed, ", "))
}

// registryName is host as go-containerregistry names it (docker.io is index.docker.io).
func registryName(host string) string {
	if r, err := name.NewRegistry(host); err == nil {
		return r.RegistryStr()
	}
	return host
}
