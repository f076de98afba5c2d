package node_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubecc/kubecc/pkg/build"
	"github.com/kubecc/kubecc/pkg/build/node"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/image"
	"github.com/kubecc/kubecc/pkg/image/imagetest"
)

// needNpm skips tests that run the real npm against the npm registry.
func needNpm(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs npm")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not on PATH")
	}
}

// pipeline is build.New's pipeline pushing to a loopback registry, with kubecc's
// minimal base (no node in it: these tests look at the image's files) pushed there
// as nodeBaseImage.
func pipeline(t *testing.T) (*build.Pipeline, *bytes.Buffer) {
	t.Helper()
	host := imagetest.Loopback(t)
	cfg, err := config.Load(t.TempDir(), func(k string) (string, bool) {
		switch k {
		case "KUBECC_REGISTRY":
			return host + "/kubecc", true
		case "KUBECC_REGISTRY_INSECURE":
			return "true", true
		case "KUBECC_NODE_BASE_IMAGE":
			return host + "/base:node", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p := build.New(cfg, &out)
	base, err := image.Base("amd64")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Registry.Push(context.Background(), host+"/base:node", base); err != nil {
		t.Fatal(err)
	}
	return p, &out
}

// example lays out examples/chaincode/<dir> the way the peer unpacks a package
// made by `peer lifecycle chaincode package --lang node` (src/ without node_modules).
func example(t *testing.T, dir, label string) build.Input {
	t.Helper()
	src := t.TempDir()
	root := filepath.Join(repoRoot(t), "examples", "chaincode", dir)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "dist") {
			return filepath.SkipDir
		}
		target := filepath.Join(src, "src", rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return input(t, src, label)
}

func input(t *testing.T, src, label string) build.Input {
	t.Helper()
	md, err := chaincode.ParseMetadata("metadata.json", []byte(`{"type":"node","path":"/home/dev/cc","label":"`+label+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	return build.Input{SrcDir: src, Metadata: md, PackageID: label + ":abc"}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// layerFiles lists one layer: path → header (and content for small files).
type layerFile struct {
	hdr  *tar.Header
	data []byte
}

func layerFiles(t *testing.T, l v1.Layer) map[string]layerFile {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	files := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(io.LimitReader(tr, 1<<20))
		files["/"+strings.TrimSuffix(hdr.Name, "/")] = layerFile{hdr, data}
	}
}

// builtImage builds in and returns the result, the image's config and its two
// layers on the base (node_modules, application).
func builtImage(t *testing.T, p *build.Pipeline, out *bytes.Buffer, in build.Input) (*build.Result, *v1.ConfigFile, v1.Layer, v1.Layer) {
	t.Helper()
	ctx := context.Background()
	res, err := p.Build(ctx, in)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	img, err := p.Registry.Image(ctx, res.Image.Ref(), v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 { // the minimal base has one
		t.Fatalf("%d layers, want the base's and two", len(layers))
	}
	h := cf.History[len(cf.History)-2:]
	if !strings.HasPrefix(h[0].CreatedBy, "kubecc: node_modules") || h[1].CreatedBy != "kubecc: Node.js chaincode" {
		t.Fatalf("history %+v", h)
	}
	return res, cf, layers[1], layers[2]
}

func TestJavaScriptImage(t *testing.T) {
	needNpm(t)
	p, out := pipeline(t)
	in := example(t, "js", "js_cc")
	res, cf, mods, app := builtImage(t, p, out, in)
	if res.Info.Type != "node" || !res.Info.PeerAddressArg || res.Reused {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(out.String(), "npm ci --omit=dev (src/package-lock.json)") {
		t.Errorf("log does not show npm ci:\n%s", out)
	}
	c := cf.Config
	if c.WorkingDir != node.AppDir || c.User != image.User || len(c.Entrypoint) != 4 || c.Entrypoint[0] != "/bin/sh" ||
		!strings.Contains(c.Entrypoint[2], "exec fabric-chaincode-node start \"$@\"") || c.Cmd != nil {
		t.Errorf("config %+v", c)
	}
	if c.Labels[image.LabelType] != "node" || c.Labels[image.LabelPackageID] != "js_cc:abc" || c.Labels[image.LabelBuilder] != "kubecc" {
		t.Errorf("labels %v", c.Labels)
	}
	appFiles, modFiles := layerFiles(t, app), layerFiles(t, mods)
	for _, f := range []string{"/usr/src/app/package.json", "/usr/src/app/index.js", "/usr/src/app/package-lock.json"} {
		if _, ok := appFiles[f]; !ok {
			t.Errorf("%s not in the application layer", f)
		}
	}
	for f := range appFiles {
		if strings.Contains(f, "node_modules/") {
			t.Errorf("%s in the application layer", f)
		}
	}
	if f := modFiles["/usr/src/app/node_modules/fabric-shim/package.json"]; f.hdr == nil || f.hdr.Uid != 0 || f.hdr.Mode != 0o644 {
		t.Errorf("fabric-shim not installed: %+v", f.hdr)
	}
	bin := modFiles["/usr/src/app/node_modules/.bin/fabric-chaincode-node"]
	if bin.hdr == nil || bin.hdr.Typeflag != tar.TypeSymlink || bin.hdr.Linkname != "../fabric-shim/cli.js" {
		t.Errorf("node_modules/.bin/fabric-chaincode-node: %+v", bin.hdr)
	}
	if cli := modFiles["/usr/src/app/node_modules/fabric-shim/cli.js"]; cli.hdr == nil || cli.hdr.Mode != 0o755 {
		t.Errorf("fabric-shim/cli.js keeps its exec bit: %+v", cli.hdr)
	}

	startsWithNode(t, cf, mods, app)

	// The contract alone changes: a new image whose node_modules layer is the very
	// same blob, so the registry and the nodes already hold it.
	index := filepath.Join(in.SrcDir, "src", "index.js")
	data, _ := os.ReadFile(index)
	if err := os.WriteFile(index, append(data, []byte("\n// changed\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	res2, _, mods2, app2 := builtImage(t, p, out, in)
	d1, _ := mods.Digest()
	d2, _ := mods2.Digest()
	a1, _ := app.Digest()
	a2, _ := app2.Digest()
	if res2.Image.Digest == res.Image.Digest || a1 == a2 {
		t.Fatal("changed contract, same image")
	}
	if d1 != d2 {
		t.Fatalf("node_modules layer changed with the contract alone: %s, then %s", d1, d2)
	}
	// The same package again: found by its content hash, npm not run.
	out.Reset()
	res3, err := p.Build(context.Background(), in)
	if err != nil || !res3.Reused || res3.Image != res2.Image || strings.Contains(out.String(), "npm ") {
		t.Fatalf("rebuild: %+v %v\n%s", res3, err, out)
	}
}

func TestTypeScriptImage(t *testing.T) {
	needNpm(t)
	p, out := pipeline(t)
	_, _, mods, app := builtImage(t, p, out, example(t, "ts", "ts_cc"))
	for _, want := range []string{"npm ci --include=dev", "npm run build", "npm prune --omit=dev"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log does not show %q:\n%s", want, out)
		}
	}
	appFiles, modFiles := layerFiles(t, app), layerFiles(t, mods)
	for _, f := range []string{"/usr/src/app/dist/index.js", "/usr/src/app/dist/store.js", "/usr/src/app/package.json"} {
		if _, ok := appFiles[f]; !ok {
			t.Errorf("%s not in the image", f)
		}
	}
	if !bytes.Contains(appFiles["/usr/src/app/dist/store.js"].data, []byte("put ")) {
		t.Error("dist/store.js is not the compiled contract")
	}
	for f := range modFiles {
		if strings.Contains(f, "/node_modules/typescript") || strings.HasSuffix(f, "/.bin/tsc") {
			t.Fatalf("the TypeScript compiler is in the image: %s", f)
		}
	}
	if _, ok := modFiles["/usr/src/app/node_modules/fabric-contract-api/package.json"]; !ok {
		t.Error("fabric-contract-api not installed")
	}
	if testing.Verbose() {
		t.Logf("build log:\n%s", out)
	}
}

func TestBuildErrors(t *testing.T) {
	p, out := pipeline(t)
	ctx := context.Background()
	pkg := func(files map[string]string) build.Input {
		src := t.TempDir()
		for name, body := range files {
			path := filepath.Join(src, name)
			_ = os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return input(t, src, "bad_cc")
	}
	check := func(name string, in build.Input, want ...string) {
		t.Helper()
		out.Reset()
		_, err := p.Build(ctx, in)
		if err == nil {
			t.Fatalf("%s: built", name)
		}
		if testing.Verbose() {
			t.Logf("%s: %v", name, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", name, err, w)
			}
		}
	}
	// No npm needed: refused before it runs.
	check("no package.json", pkg(map[string]string{"src/index.js": ""}), "src/package.json: missing")
	check("no start script", pkg(map[string]string{"src/package.json": `{"name":"x","scripts":{"build":"tsc"}}`}), `src/package.json: field "scripts.start" is missing`)

	needNpm(t)
	// A failing build script: its output is in the log, its last lines in the error.
	check("failing build", pkg(map[string]string{
		"src/package.json": `{"name":"x","version":"1.0.0","scripts":{"start":"node index.js","build":"node build.js"}}`,
		"src/build.js":     `console.error("build.js:1: compile error: bad thing"); process.exit(2)`,
	}), `src/package.json: script "build" (node build.js)`, "npm run build failed", "compile error: bad thing")
	if !strings.Contains(out.String(), "build.js:1: compile error: bad thing") {
		t.Errorf("the build script's output is not in the log:\n%s", out)
	}
	// A lockfile out of date with package.json: npm ci says what is missing.
	js := filepath.Join(repoRoot(t), "examples", "chaincode", "js")
	lock, err := os.ReadFile(filepath.Join(js, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	check("stale lockfile", pkg(map[string]string{
		"src/package.json":      `{"name":"kubecc-example-js","version":"1.0.0","scripts":{"start":"fabric-chaincode-node start"},"dependencies":{"fabric-contract-api":"2.5.8","fabric-shim":"2.5.8","left-pad":"1.3.0"}}`,
		"src/package-lock.json": string(lock),
		"src/index.js":          "",
	}), "src/package-lock.json: npm ci --omit=dev failed", "left-pad")
}

// startsWithNode unpacks the image's two layers into a folder and runs its entry
// point there (AppDir rewritten to that folder) with this host's node, as run
// starts it: run's -peer.address flag as the only argument. fabric-shim must take
// the address and dial the peer.
func startsWithNode(t *testing.T, cf *v1.ConfigFile, layers ...v1.Layer) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Log("node is not on PATH: the image's start-up is not tried")
		return
	}
	root := t.TempDir()
	for _, l := range layers {
		unpack(t, l, root)
	}
	app := filepath.Join(root, node.AppDir)
	ep := cf.Config.Entrypoint
	script := strings.ReplaceAll(ep[2], node.AppDir, app)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ep[0], ep[1], script, ep[3], "-peer.address=127.0.0.1:1")
	cmd.Dir = app
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CORE_CHAINCODE_ID_NAME=js_cc:abc", "CORE_PEER_TLS_ENABLED=false"}
	var buf bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); _ = pw.Close() }()
	defer func() { _ = cmd.Process.Kill() }()
	sc := bufio.NewScanner(io.TeeReader(pr, &buf))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `Registering with peer 127.0.0.1:1 as chaincode "js_cc:abc"`) {
			return
		}
	}
	t.Fatalf("the chaincode did not dial the peer:\n%s", buf.String())
}

// unpack writes a layer's folders, files and links under root.
func unpack(t *testing.T, l v1.Layer, root string) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, p)
		case tar.TypeReg:
			var data []byte
			if data, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, data, os.FileMode(hdr.Mode))
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
