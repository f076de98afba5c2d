package image

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BinaryPath is where the chaincode binary lives in images kubecc builds.
const BinaryPath = "/usr/local/bin/chaincode"

// User is the non-root user images kubecc builds run as (numeric, so that the
// kubelet can enforce runAsNonRoot without reading /etc/passwd).
const User = "10001:10001"

// Label keys on every image kubecc builds.
const (
	LabelPrefix      = "org.hyperledger.fabric.chaincode."
	LabelLabel       = LabelPrefix + "label"
	LabelPackageID   = LabelPrefix + "package-id"
	LabelType        = LabelPrefix + "type"
	LabelContentHash = LabelPrefix + "content-hash"
	LabelBuilder     = LabelPrefix + "builder"
)

// Base is kubecc's built-in minimal base: no shell and no libc (the chaincode is a
// static binary), just the files a non-root process expects: /etc/passwd, /etc/group
// and a world-writable /tmp.
func Base(arch string) (v1.Image, error) {
	layer, err := Layer([]Entry{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nchaincode:x:10001:10001:chaincode:/tmp:/sbin/nologin\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nchaincode:x:10001:\n")},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
	}, time.Unix(0, 0).UTC())
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "kubecc: minimal base", Created: v1.Time{Time: time.Unix(0, 0).UTC()}}})
	if err != nil {
		return nil, fmt.Errorf("base image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cf.Config.User = User
	cf.Config.WorkingDir = "/tmp"
	return mutate.ConfigFile(img, cf)
}

// Spec says what goes on top of the base.
type Spec struct {
	// Layers go on the base in order, one layer each.
	Layers []Contents
	// Entrypoint replaces the base's entry point and command; nil keeps them.
	Entrypoint []string
	// User replaces a base user that is root or unset; "" keeps the base's.
	User string
	// Env entries (KEY=VALUE) replace the base's entries of the same keys.
	Env         []string
	WorkingDir  string
	Labels      map[string]string
	Annotations map[string]string
	Created     time.Time
	Arch        string
}

// Contents are the files of one layer and the history line that says what it is.
type Contents struct {
	Entries   []Entry
	CreatedBy string
}

// Binary is the layer of a static chaincode binary at BinaryPath.
func Binary(data []byte) Contents {
	return Contents{Entries: []Entry{{Path: BinaryPath, Mode: 0o755, Data: data}}, CreatedBy: "kubecc: chaincode binary"}
}

// Assemble puts spec's layers on base and sets the entrypoint, a non-root user,
// labels and OCI annotations. The result depends only on its inputs.
func Assemble(base v1.Image, spec Spec) (v1.Image, error) {
	created := spec.Created.UTC()
	img := base
	for _, c := range spec.Layers {
		layer, err := Layer(c.Entries, created)
		if err != nil {
			return nil, fmt.Errorf("layer %q: %w", c.CreatedBy, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer, History: v1.History{CreatedBy: c.CreatedBy, Created: v1.Time{Time: created}}})
		if err != nil {
			return nil, fmt.Errorf("append layer %q: %w", c.CreatedBy, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS = "linux"
	if spec.Arch != "" {
		cf.Architecture = spec.Arch
	}
	if spec.Entrypoint != nil {
		cf.Config.Entrypoint = spec.Entrypoint
		cf.Config.Cmd = nil
	}
	cf.Config.Env = setEnv(cf.Config.Env, spec.Env)
	if spec.WorkingDir != "" {
		cf.Config.WorkingDir = spec.WorkingDir
	}
	if u := cf.Config.User; spec.User != "" && (u == "" || u == "root" || u == "0" || u == "0:0") {
		cf.Config.User = spec.User
	}
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	for k, v := range spec.Labels {
		cf.Config.Labels[k] = v
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(spec.Annotations) > 0 {
		img = mutate.Annotations(img, spec.Annotations).(v1.Image)
	}
	return img, nil
}

// setEnv replaces or appends each KEY=VALUE of set in env, keeping env's order.
func setEnv(env, set []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range set {
		key, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range out {
			if k, _, _ := strings.Cut(old, "="); k == key {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
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

// Scratch is an empty image for arch, run as a non-root user: for images of files
// alone, such as kubecc's own.
func Scratch(arch string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Config.User = "65532:65532"
	return mutate.ConfigFile(img, cf)
}
