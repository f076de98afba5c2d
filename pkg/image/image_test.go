package image

import (
	"archive/tar"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubecc/kubecc/pkg/image/imagetest"
)

func assemble(t *testing.T, binary string, created time.Time) v1.Image {
	t.Helper()
	base, err := Base("amd64")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Assemble(base, Spec{Layers: []Contents{Binary([]byte(binary))}, Entrypoint: []string{BinaryPath}, User: User, Labels: map[string]string{LabelLabel: "cc"}, Annotations: map[string]string{"org.opencontainers.image.title": "cc"}, Created: created, Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestAssembleIsReproducible(t *testing.T) {
	a := assemble(t, "binary", time.Unix(0, 0))
	b := assemble(t, "binary", time.Unix(0, 0))
	c := assemble(t, "binary2", time.Unix(0, 0))
	d := assemble(t, "binary", time.Unix(100, 0))
	da, _ := a.Digest()
	db, _ := b.Digest()
	dc, _ := c.Digest()
	dd, _ := d.Digest()
	if da != db {
		t.Fatalf("same inputs, digests %s and %s", da, db)
	}
	if da == dc || da == dd {
		t.Fatal("different binary or date, same digest")
	}
}

func TestAssembledImageConfigAndLayers(t *testing.T) {
	img := assemble(t, "\x7fELF-binary", time.Unix(0, 0))
	mt, _ := img.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != BinaryPath {
		t.Errorf("entrypoint %q", got)
	}
	if cf.Config.User != User || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("user %q os %q arch %q", cf.Config.User, cf.OS, cf.Architecture)
	}
	if cf.Config.Labels[LabelLabel] != "cc" {
		t.Errorf("labels %v", cf.Config.Labels)
	}
	m, _ := img.Manifest()
	if m.Annotations["org.opencontainers.image.title"] != "cc" {
		t.Errorf("annotations %v", m.Annotations)
	}
	layers, _ := img.Layers()
	if len(layers) != 2 {
		t.Fatalf("%d layers, want base + binary", len(layers))
	}
	files := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = h
		}
		_ = rc.Close()
	}
	bin := files[strings.TrimPrefix(BinaryPath, "/")]
	if bin == nil || bin.Mode != 0o755 || !bin.ModTime.Equal(time.Unix(0, 0)) || bin.Uid != 0 {
		t.Fatalf("binary entry %+v", bin)
	}
	if tmp := files["tmp/"]; tmp == nil || tmp.Mode&0o1777 != 0o1777 {
		t.Fatalf("/tmp entry %+v", tmp)
	}
	for _, parent := range []string{"usr/", "usr/local/", "usr/local/bin/"} {
		if files[parent] == nil {
			t.Errorf("missing parent directory %s", parent)
		}
	}
}

func TestPushHeadResolveAgainstLoopbackRegistry(t *testing.T) {
	host := imagetest.Loopback(t)
	r := &Registry{Insecure: func(h string) bool { return h == host }}
	ctx := context.Background()
	img := assemble(t, "binary", time.Unix(0, 0))
	ref := host + "/kubecc/cc:v1"

	if desc, err := r.Head(ctx, ref); err != nil || desc != nil {
		t.Fatalf("head before push: %v %v", desc, err)
	}
	digest, err := r.Push(ctx, ref, img)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if digest != want {
		t.Fatalf("pushed digest %s, image digest %s", digest, want)
	}
	desc, err := r.Head(ctx, ref)
	if err != nil || desc == nil || desc.Digest != want {
		t.Fatalf("head after push: %v %v", desc, err)
	}
	repo, d, err := r.Resolve(ctx, ref)
	if err != nil || repo != host+"/kubecc/cc" || d != want.String() {
		t.Fatalf("resolve tag: %s %s %v", repo, d, err)
	}
	if _, _, err := r.Resolve(ctx, host+"/kubecc/cc@sha256:"+strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("resolve missing digest: %v", err)
	}
	pulled, err := r.Image(ctx, repo+"@"+d, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if pd, _ := pulled.Digest(); pd != want {
		t.Fatalf("pulled digest %s", pd)
	}
}

func TestCountUploadsSkipsLayersTheRegistryHolds(t *testing.T) {
	host := imagetest.Loopback(t)
	reg := &Registry{Insecure: func(string) bool { return true }}
	ctx := context.Background()
	push := func(binary string) *Uploads {
		t.Helper()
		img, up := CountUploads(assemble(t, binary, time.Unix(0, 0)))
		if _, err := reg.Push(ctx, host+"/cc:"+binary, img); err != nil {
			t.Fatal(err)
		}
		return up
	}
	first := push("one")
	if first.Layers() != 2 || first.Bytes() == 0 {
		t.Fatalf("first push uploaded %d layers, %d bytes; want the base and the binary", first.Layers(), first.Bytes())
	}
	// Same base layer, new binary layer: only the binary goes up.
	second := push("two")
	if second.Layers() != 1 || second.Bytes() == 0 || second.Bytes() >= first.Bytes() {
		t.Fatalf("second push uploaded %d layers, %d bytes (first: %d bytes); want only the binary layer", second.Layers(), second.Bytes(), first.Bytes())
	}
	if again := push("two"); again.Layers() != 0 || again.Bytes() != 0 {
		t.Fatalf("pushing the same image again uploaded %d layers, %d bytes", again.Layers(), again.Bytes())
	}
}
