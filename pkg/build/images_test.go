package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/image/imagetest"
)

// imagePackage lays out an unpacked image package naming ref.
func imagePackage(t *testing.T, ref string) Input {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, chaincode.ImageFile), []byte(`{"name":"`+ref+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	md, err := chaincode.ParseMetadata("metadata.json", []byte(`{"type":"kubecc","label":"cc"}`))
	if err != nil {
		t.Fatal(err)
	}
	return Input{SrcDir: dir, Metadata: md}
}

func TestAllowedRegistries(t *testing.T) {
	ctx := context.Background()
	push := imagetest.Loopback(t)  // the registry images are pushed to
	other := imagetest.Loopback(t) // another registry an operator may allow
	b, _ := newBuilder(t, push)
	for _, host := range []string{push, other} {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := b.Registry.ParseRef(host + "/prebuilt/cc:v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	b.Config.InsecureRegistries = []string{other}

	// Not set: any registry.
	if _, err := b.Build(ctx, imagePackage(t, other+"/prebuilt/cc:v1")); err != nil {
		t.Fatalf("no allow-list: %v", err)
	}

	b.Config.AllowedRegistries = []string{other}
	for _, ref := range []string{push + "/prebuilt/cc:v1", other + "/prebuilt/cc:v1"} {
		if _, err := b.Build(ctx, imagePackage(t, ref)); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}

	b.Config.AllowedRegistries = []string{"127.0.0.1:1"}
	cases := map[string]string{
		other + "/prebuilt/cc:v1":        "registry " + other + " is not in allowedRegistries (127.0.0.1:1, " + push + ")",
		"busybox":                        "registry index.docker.io is not in allowedRegistries",
		"docker.io/library/busybox:1.36": "registry index.docker.io is not in allowedRegistries",
		"ghcr.io/org/cc@sha256:" + strings.Repeat("ab", 32): "registry ghcr.io is not in allowedRegistries",
	}
	for ref, want := range cases {
		in := imagePackage(t, ref)
		if strings.Contains(ref, "@") {
			name, digest, _ := strings.Cut(ref, "@")
			_ = os.WriteFile(filepath.Join(in.SrcDir, chaincode.ImageFile), []byte(`{"name":"`+name+`","digest":"`+digest+`"}`), 0o644)
		}
		_, err := b.Build(ctx, in)
		prefix := filepath.Join(in.SrcDir, chaincode.ImageFile) + `: field "name": `
		if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", ref, err, prefix+want)
		}
	}

	// docker.io in the list allows Docker Hub names (checked before any pull).
	b.Config.AllowedRegistries = []string{"docker.io"}
	if err := b.checkRegistry("image.json", chaincode.ImageRef{Name: "busybox"}); err != nil {
		t.Errorf("docker.io allowed, busybox: %v", err)
	}
	if err := b.checkRegistry("image.json", chaincode.ImageRef{Name: "index.docker.io/library/busybox"}); err != nil {
		t.Errorf("docker.io allowed, index.docker.io: %v", err)
	}
}
