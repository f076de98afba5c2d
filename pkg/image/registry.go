package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Registry talks to OCI registries with the standard Docker config keychain.
type Registry struct {
	// Insecure reports the registry hosts (host[:port]) reached over plain HTTP.
	Insecure func(host string) bool
	// Keychain defaults to authn.DefaultKeychain (~/.docker/config.json, DOCKER_CONFIG).
	Keychain authn.Keychain
	// Transport defaults to remote.DefaultTransport.
	Transport http.RoundTripper
}

// ParseRef parses an image reference, plain HTTP where the host is insecure.
func (r *Registry) ParseRef(ref string) (name.Reference, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	if r.Insecure != nil && r.Insecure(parsed.Context().RegistryStr()) {
		parsed, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("image reference %q: %w", ref, err)
		}
	}
	return parsed, nil
}

func (r *Registry) options(ctx context.Context, extra ...remote.Option) []remote.Option {
	kc := r.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithUserAgent("kubecc")}
	if r.Transport != nil {
		opts = append(opts, remote.WithTransport(r.Transport))
	}
	return append(opts, extra...)
}

// IsNotFound reports whether err says the manifest or repository does not exist.
func IsNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, e := range terr.Errors {
		if e.Code == transport.ManifestUnknownErrorCode || e.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// Head returns the descriptor of ref, or nil (and no error) when it does not exist.
func (r *Registry) Head(ctx context.Context, ref string) (*v1.Descriptor, error) {
	parsed, err := r.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Head(parsed, r.options(ctx)...)
	if IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", ref, err)
	}
	return desc, nil
}

// Image fetches ref (for an index: the image for platform).
func (r *Registry) Image(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	parsed, err := r.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(parsed, r.options(ctx, remote.WithPlatform(platform))...)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", ref, err)
	}
	return img, nil
}

// Push writes img under ref (a tag). Blobs the registry already has are not sent again.
func (r *Registry) Push(ctx context.Context, ref string, img v1.Image) (v1.Hash, error) {
	parsed, err := r.ParseRef(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(parsed, img, r.options(ctx)...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return d, nil
}

// Resolve pins ref to a digest that exists in the registry: a tag is resolved, a
// digest is checked. It returns the repository name and the digest.
func (r *Registry) Resolve(ctx context.Context, ref string) (repo string, digest string, err error) {
	parsed, err := r.ParseRef(ref)
	if err != nil {
		return "", "", err
	}
	desc, err := r.Head(ctx, ref)
	if err != nil {
		return "", "", err
	}
	if desc == nil {
		return "", "", fmt.Errorf("image %s: not found in the registry", ref)
	}
	if d, ok := parsed.(name.Digest); ok && d.DigestStr() != desc.Digest.String() {
		return "", "", fmt.Errorf("image %s: registry answered digest %s", ref, desc.Digest)
	}
	return parsed.Context().Name(), desc.Digest.String(), nil
}

// Delete removes the manifest ref names (by digest) from its registry.
func (r *Registry) Delete(ctx context.Context, ref string) error {
	parsed, err := r.ParseRef(ref)
	if err != nil {
		return err
	}
	if err := remote.Delete(parsed, r.options(ctx)...); err != nil {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	return nil
}

// Pinned fetches ref for platform and returns it with its digest, which names it
// where the reference's tag could move.
func (r *Registry) Pinned(ctx context.Context, ref string, platform v1.Platform) (v1.Image, string, error) {
	img, err := r.Image(ctx, ref, platform)
	if err != nil {
		return nil, "", err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", ref, err)
	}
	return img, d.String(), nil
}
