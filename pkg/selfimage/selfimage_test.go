package selfimage

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kubecc/kubecc/pkg/image"
)

func fakeBin(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range append(Binaries(), InstallBinary) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBuildIsReproducibleAndLaidOut(t *testing.T) {
	bin := fakeBin(t, "v1-")
	opts := Options{BinDir: bin, Version: "v1", Revision: "abc", Created: time.Unix(1700000000, 0), Arch: "amd64"}
	a, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(opts)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("same inputs, digests %s and %s", da, db)
	}
	opts.BinDir = fakeBin(t, "v2-")
	c, _ := Build(opts)
	if dc, _ := c.Digest(); dc == da {
		t.Fatal("different binaries, same digest")
	}

	cf, _ := a.ConfigFile()
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != Install || cf.Config.User != "65532:65532" {
		t.Fatalf("config %+v", cf.Config)
	}
	if cf.Config.Labels["org.opencontainers.image.version"] != "v1" || cf.Config.Labels["org.opencontainers.image.revision"] != "abc" {
		t.Fatalf("labels %v", cf.Config.Labels)
	}
	files := map[string]string{}
	tr := tar.NewReader(mutate.Extract(a))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[hdr.Name] = string(data)
		if hdr.Typeflag == tar.TypeReg && hdr.Mode&0o111 == 0 {
			t.Errorf("%s is not executable", hdr.Name)
		}
	}
	for _, name := range Binaries() {
		if files["opt/kubecc/bin/"+name] != "v1-"+name {
			t.Errorf("bin/%s: %q", name, files["opt/kubecc/bin/"+name])
		}
	}
	if files["opt/kubecc/install"] != "v1-"+InstallBinary {
		t.Errorf("installer: %q", files["opt/kubecc/install"])
	}
}

func TestBuildOnABaseKeepsIt(t *testing.T) {
	base, err := image.Base("amd64")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(Options{BinDir: fakeBin(t, "x-"), Base: base, Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	baseLayers, _ := base.Layers()
	if len(layers) != len(baseLayers)+1 {
		t.Fatalf("%d layers on a base of %d", len(layers), len(baseLayers))
	}
	// A peer image keeps its own entry point, command and user.
	bcf, _ := base.ConfigFile()
	bcf = bcf.DeepCopy()
	bcf.Config.Entrypoint, bcf.Config.Cmd, bcf.Config.User = []string{"peer"}, []string{"node", "start"}, "0"
	peer, _ := mutate.ConfigFile(base, bcf)
	img, err = Build(Options{BinDir: fakeBin(t, "x-"), Base: peer, Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "peer" || len(cf.Config.Cmd) != 2 || cf.Config.User != "0" {
		t.Fatalf("the peer image's config changed: %+v", cf.Config)
	}
}

func TestBuildNamesAMissingBinary(t *testing.T) {
	bin := fakeBin(t, "x-")
	_ = os.Remove(filepath.Join(bin, "run-serverless"))
	_, err := Build(Options{BinDir: bin, Arch: "amd64"})
	if err == nil || !strings.Contains(err.Error(), "run-serverless") || !strings.Contains(err.Error(), "make") {
		t.Fatalf("error %v", err)
	}
}
