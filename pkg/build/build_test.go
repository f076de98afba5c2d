package build

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/image"
	"github.com/kubecc/kubecc/pkg/image/imagetest"
)

func newBuilder(t *testing.T, host string) (*Pipeline, *bytes.Buffer) {
	t.Helper()
	cfg, err := config.Load(t.TempDir(), func(k string) (string, bool) {
		switch k {
		case "KUBECC_REGISTRY":
			return host + "/kubecc", true
		case "KUBECC_REGISTRY_INSECURE":
			return "true", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	b := New(cfg, &log)
	return b, &log
}

// goPackage lays out a dependency-free Go module the way the peer unpacks one.
func goPackage(t *testing.T, body string) Input {
	t.Helper()
	src := t.TempDir()
	files := map[string]string{
		"src/go.mod":  "module example.com/cc\n\ngo 1.22\n",
		"src/main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"" + body + "\") }\n",
		"META-INF/statedb/couchdb/indexes/byOwner.json": `{"index":{"fields":["owner"]}}`,
	}
	for name, data := range files {
		p := filepath.Join(src, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	md, err := chaincode.ParseMetadata("metadata.json", []byte(`{"type":"golang","path":"example.com/cc","label":"my_cc"}`))
	if err != nil {
		t.Fatal(err)
	}
	return Input{SrcDir: src, Metadata: md, PackageID: "my_cc:abc"}
}

func TestGoBuildPushReuseAndReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go")
	}
	host := imagetest.Loopback(t)
	b, log := newBuilder(t, host)
	ctx := context.Background()
	in := goPackage(t, "hello")

	first, err := b.Build(ctx, in)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if first.Reused || first.Image.Name != host+"/kubecc/my-cc" || !strings.HasPrefix(first.Image.Digest, "sha256:") {
		t.Fatalf("first build: %+v", first)
	}
	if !first.Info.PeerAddressArg {
		t.Error("a Go image kubecc built must get -peer.address")
	}
	// The same package again: found by its content hash, nothing compiled.
	log.Reset()
	second, err := b.Build(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Reused || second.Image != first.Image || strings.Contains(log.String(), "compiling") {
		t.Fatalf("rebuild was not a reuse: %+v\n%s", second, log)
	}
	// A fresh registry, same package: compiled again to the very same digest.
	b2, _ := newBuilder(t, imagetest.Loopback(t))
	third, err := b2.Build(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if third.Reused || third.Image.Digest != first.Image.Digest {
		t.Fatalf("not reproducible: %s vs %s", third.Image.Digest, first.Image.Digest)
	}
	// The image carries kubecc's labels.
	img, err := b.Registry.Image(ctx, first.Image.Ref(), v1Platform())
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.Labels[image.LabelPackageID] != "my_cc:abc" || cf.Config.Labels[image.LabelLabel] != "my_cc" || cf.Config.Labels[image.LabelContentHash] != first.ContentHash {
		t.Fatalf("labels %v", cf.Config.Labels)
	}

	out := t.TempDir()
	if err := WriteOutput(out, in.SrcDir, first); err != nil {
		t.Fatal(err)
	}
	ref, err := chaincode.ReadImageRef(filepath.Join(out, "image.json"))
	if err != nil || ref != first.Image {
		t.Fatalf("image.json: %+v %v", ref, err)
	}
	if _, err := os.Stat(filepath.Join(out, "META-INF/statedb/couchdb/indexes/byOwner.json")); err != nil {
		t.Fatalf("META-INF not copied: %v", err)
	}
	bi, err := chaincode.ReadBuildInfo(out)
	if err != nil || !bi.PeerAddressArg {
		t.Fatalf("kubecc.json: %+v %v", bi, err)
	}

	// An image package naming the image by tag is pinned to the digest.
	imgPkg := t.TempDir()
	_ = os.WriteFile(filepath.Join(imgPkg, "image.json"), []byte(`{"name":"`+first.Image.Name+`:`+first.ContentHash+`"}`), 0o644)
	md, _ := chaincode.ParseMetadata("metadata.json", []byte(`{"type":"kubecc","label":"my_cc"}`))
	pinned, err := b.Build(ctx, Input{SrcDir: imgPkg, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	if pinned.Image != first.Image || !pinned.Info.PeerAddressArg {
		t.Fatalf("image package resolved to %+v", pinned)
	}
}

func TestBuildErrors(t *testing.T) {
	host := imagetest.Loopback(t)
	b, _ := newBuilder(t, host)
	ctx := context.Background()

	imgPkg := t.TempDir()
	_ = os.WriteFile(filepath.Join(imgPkg, "image.json"), []byte(`{"name":"`+host+`/nope/missing:v1"}`), 0o644)
	md, _ := chaincode.ParseMetadata("metadata.json", []byte(`{"type":"kubecc","label":"cc"}`))
	if _, err := b.Build(ctx, Input{SrcDir: imgPkg, Metadata: md}); err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "image.json") {
		t.Fatalf("missing image: %v", err)
	}

	in := goPackage(t, "x")
	if err := os.Symlink("/etc/passwd", filepath.Join(in.SrcDir, "src", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(ctx, in); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("symlink in source: %v", err)
	}

	b.Config.Registry = ""
	if _, err := b.Build(ctx, goPackage(t, "x")); err == nil || !strings.Contains(err.Error(), "registry") {
		t.Fatalf("no registry: %v", err)
	}
}

func TestRepoName(t *testing.T) {
	for in, want := range map[string]string{"basic_1.0": "basic-1-0", "My+CC": "my-cc", "__": "chaincode", "a": "a"} {
		if got := RepoName(in); got != want {
			t.Errorf("RepoName(%q) = %q, want %q", in, got, want)
		}
	}
}

func v1Platform() v1.Platform { return v1.Platform{OS: "linux", Architecture: "amd64"} }
