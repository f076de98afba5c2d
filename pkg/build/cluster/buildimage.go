package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubecc/kubecc/pkg/launch"
)

// BuildImagesRepo is where build images go, under the config's registry prefix. It has
// two path segments, so no chaincode's repository (one segment) can be it.
const BuildImagesRepo = "kubecc-build/toolchains"

// KubeccPath is kubecc in kubecc's image, and so in a build image.
const KubeccPath = "/opt/kubecc/bin/kubecc"

// buildImage is the image a build Job runs.
type buildImage struct {
	// Ref runs the build: a build image by digest, or the bare toolchain.
	Ref string
	// CopyFrom is kubecc's image when Ref is the bare toolchain: an init container then
	// copies kubecc into the pod first.
	CopyFrom string
	// Arch is the build image's one architecture (kubecc's): its pods go to such nodes.
	Arch string
	// Pushed says the build image was new to the registry.
	Pushed bool
}

// errMissing is an image its registry says it does not have: no Job could pull it.
var errMissing = errors.New("not found in its registry")

// buildImage returns the toolchain with kubecc's layer on top, pushed once per pair
// of digests to the registry chaincode images go to. A Job of one container starts a
// kubelet status round sooner than one that first runs an init container to copy
// kubecc in: the kubelet notices an init container's exit only at its next relist. When the hook cannot read either image or cannot push (a
// toolchain the nodes pull through a mirror the peer cannot reach, say), the Job falls
// back to the init container; an image its registry says is missing fails the build.
func (r *Runner) buildImage(ctx context.Context, lang, tool string, log *launch.Log) (buildImage, error) {
	fallback := buildImage{Ref: tool, CopyFrom: r.Config.KubeccImage}
	img, err := r.composeBuildImage(ctx, lang, tool)
	switch {
	case errors.Is(err, errMissing):
		return buildImage{}, err
	case ctx.Err() != nil:
		return buildImage{}, ctx.Err()
	case err != nil:
		log.Printf("warning: build image of %s and %s: %v; the Job copies kubecc in with an init container", tool, r.Config.KubeccImage, err)
		return fallback, nil
	}
	return img, nil
}

func (r *Runner) composeBuildImage(ctx context.Context, lang, tool string) (buildImage, error) {
	repo := r.Config.Registry + "/" + BuildImagesRepo
	// The tag names the inputs (the two images' digests and kubecc's architecture), so
	// a later build finds the image with one request; with both references pinned by
	// digest, as deployments should, that request is the only one. kubecc's image is
	// taken for this machine's architecture when it has several.
	toolDigest, toolPinned := pinnedDigest(tool)
	selfDigest, selfPinned := pinnedDigest(r.Config.KubeccImage)
	if toolPinned && selfPinned {
		if desc, err := r.Registry.Head(ctx, buildImageTag(repo, lang, toolDigest, selfDigest, runtime.GOARCH)); err == nil && desc != nil {
			return buildImage{Ref: repo + "@" + desc.Digest.String(), Arch: runtime.GOARCH}, nil
		}
	}
	toolDigest, selfDigest, err := r.lookUp(ctx, lang, tool)
	if err != nil {
		return buildImage{}, err
	}
	self, err := r.Registry.Image(ctx, refAt(r.Config.KubeccImage, selfDigest), v1.Platform{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		return buildImage{}, err
	}
	cf, err := self.ConfigFile()
	if err != nil {
		return buildImage{}, fmt.Errorf("kubecc image: %w", err)
	}
	arch := cf.Architecture
	if arch == "" {
		return buildImage{}, fmt.Errorf("kubecc image %s names no architecture", r.Config.KubeccImage)
	}
	tag := buildImageTag(repo, lang, toolDigest, selfDigest, arch)
	if desc, err := r.Registry.Head(ctx, tag); err == nil && desc != nil {
		return buildImage{Ref: repo + "@" + desc.Digest.String(), Arch: arch}, nil
	}
	base, err := r.Registry.Image(ctx, refAt(tool, toolDigest), v1.Platform{OS: "linux", Architecture: arch})
	if err != nil {
		return buildImage{}, err
	}
	bcf, err := base.ConfigFile()
	if err != nil {
		return buildImage{}, fmt.Errorf("toolchain %s: %w", tool, err)
	}
	if bcf.Architecture != arch {
		return buildImage{}, fmt.Errorf("toolchain %s has no linux/%s image, the architecture of kubecc's image", tool, arch)
	}
	img, err := withKubecc(base, self)
	if err != nil {
		return buildImage{}, err
	}
	digest, err := r.Registry.Push(ctx, tag, img)
	if err != nil {
		return buildImage{}, err
	}
	return buildImage{Ref: repo + "@" + digest.String(), Arch: arch, Pushed: true}, nil
}

func buildImageTag(repo, lang string, tool, kubecc v1.Hash, arch string) string {
	sum := sha256.Sum256([]byte(tool.String() + "\n" + kubecc.String() + "\n" + arch))
	return repo + ":" + lang + "-" + hex.EncodeToString(sum[:])[:24]
}

// lookUp asks the registries for the toolchain's and kubecc's digests, both at once.
func (r *Runner) lookUp(ctx context.Context, lang, tool string) (toolDigest, selfDigest v1.Hash, err error) {
	var selfDesc *v1.Descriptor
	var selfErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		selfDesc, selfErr = r.Registry.Head(ctx, r.Config.KubeccImage)
	}()
	toolDesc, toolErr := r.Registry.Head(ctx, tool)
	<-done
	for _, c := range []struct {
		key, ref string
		desc     *v1.Descriptor
		err      error
	}{{"buildImages." + lang, tool, toolDesc, toolErr}, {"kubeccImage", r.Config.KubeccImage, selfDesc, selfErr}} {
		if c.err != nil {
			return v1.Hash{}, v1.Hash{}, c.err
		}
		if c.desc == nil {
			return v1.Hash{}, v1.Hash{}, fmt.Errorf("config key %s: image %s %w", c.key, c.ref, errMissing)
		}
	}
	return toolDesc.Digest, selfDesc.Digest, nil
}

// pinnedDigest is the digest ref names, if it names one.
func pinnedDigest(ref string) (v1.Hash, bool) {
	d, err := name.NewDigest(ref)
	if err != nil {
		return v1.Hash{}, false
	}
	h, err := v1.NewHash(d.DigestStr())
	return h, err == nil
}

// refAt is ref's repository at digest: the image the lookup saw, whatever its tag
// says by now.
func refAt(ref string, digest v1.Hash) string {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	return parsed.Context().Digest(digest.String()).String()
}

// withKubecc appends the top layer of kubecc's image (its /opt/kubecc) to the
// toolchain, keeping the toolchain's configuration (user, PATH, working directory).
// The layer is referenced, not rebuilt: a push to the same registry mounts it, and a
// node that pulled kubecc's image already has it.
func withKubecc(toolchain, kubecc v1.Image) (v1.Image, error) {
	layers, err := kubecc.Layers()
	if err != nil {
		return nil, fmt.Errorf("kubecc image layers: %w", err)
	}
	if len(layers) == 0 {
		return nil, errors.New("kubecc image has no layers")
	}
	mt, err := toolchain.MediaType()
	if err != nil {
		return nil, fmt.Errorf("toolchain image: %w", err)
	}
	layerType := types.OCILayer
	if mt == types.DockerManifestSchema2 {
		layerType = types.DockerLayer
	}
	digest, err := kubecc.Digest()
	if err != nil {
		return nil, fmt.Errorf("kubecc image: %w", err)
	}
	img, err := mutate.Append(toolchain, mutate.Addendum{
		Layer:     layers[len(layers)-1],
		MediaType: layerType,
		History:   v1.History{CreatedBy: "kubecc: " + KubeccPath + " from " + digest.String(), Created: v1.Time{Time: time.Unix(0, 0).UTC()}},
	})
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	return img, nil
}
