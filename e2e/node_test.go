//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubecc/kubecc/pkg/build"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/image/imagetest"
)

const (
	jsExample = "examples/chaincode/js"
	tsExample = "examples/chaincode/ts"
)

// nodePackage packages a Node.js project folder with the stock peer CLI.
func (h *harness) nodePackage(t *testing.T, dir, label string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), label+".tgz")
	h.peer(t, "lifecycle", "chaincode", "package", out, "--path", dir, "--lang", "node", "--label", label)
	return out
}

// copyProject copies a Node.js example into a fresh folder (without node_modules or
// build output a developer may have left in the work tree) and writes files over it.
func copyProject(t *testing.T, example string, files map[string]string) string {
	t.Helper()
	src := filepath.Join("..", example)
	dir := filepath.Join(t.TempDir(), filepath.Base(example))
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "dist") {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// nodeImage is the harness's Node.js image (toolchain and runtime base), by the name
// pods and the host both reach.
func nodeImage(t *testing.T, b map[string]string) string {
	t.Helper()
	img := b["NODE_IMAGE"]
	if img == "" {
		t.Fatal("builds.env has no NODE_IMAGE: e2e/up.sh builds the Node.js image (e2e/cluster/toolimage.sh node)")
	}
	return img
}

// nodeLocalConfig is the host peer's config for Node.js builds on the host, which only
// an explicit buildIn: local allows. Its own repository prefix, so that the in-cluster
// peer's builds of the same packages find nothing to reuse.
func nodeLocalConfig(t *testing.T, h *harness, b map[string]string) map[string]string {
	return map[string]string{
		"registry":           h.vars["REGISTRY"] + "/kubecc-node",
		"insecureRegistries": "[" + b["REGISTRY_POD"] + "]",
		"buildIn":            "local",
		"nodeBaseImage":      nodeImage(t, b),
	}
}

// nodeClusterConfig is the host peer's config for builds in Jobs with buildIn unset.
func nodeClusterConfig(t *testing.T, b map[string]string, prefix string) map[string]string {
	cfg := clusterBuildConfig(b)
	cfg["buildIn"] = "" // unset: auto
	cfg["registry"] = b["REGISTRY_POD"] + "/" + prefix
	cfg["buildImages"] = "{golang: " + b["GO_TOOLCHAIN_IMAGE"] + ", node: " + nodeImage(t, b) + "}"
	cfg["nodeBaseImage"] = nodeImage(t, b)
	return cfg
}

// pinnedImage is the image the build hook recorded for a package, checked to be
// pinned by digest under prefix.
func (h *harness) pinnedImage(t *testing.T, packageID, prefix string) chaincode.ImageRef {
	t.Helper()
	ref, err := chaincode.ParseImageRef("image.json", []byte(h.buildOutput(t, packageID)))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Digest == "" || !strings.HasPrefix(ref.Name, prefix+"/") {
		t.Fatalf("build output %s: want an image under %s pinned by digest", ref.Ref(), prefix)
	}
	return ref
}

// imageLayers returns the config and layer digests of an image.
func (h *harness) imageLayers(t *testing.T, ref string) (*v1.ConfigFile, []string) {
	t.Helper()
	img, err := h.registry.Image(context.Background(), ref, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf, imagetest.LayerDigests(t, img)
}

var uploaded = regexp.MustCompile(`pushed (\S+)@\S+ \(\d+ bytes compressed; uploaded (\d+) layers, (\d+) bytes\)`)

// uploadedLayers is how many layers the last push of repo sent, from the peer log.
func uploadedLayers(t *testing.T, log, repo string) (layers, bytes int) {
	t.Helper()
	found := false
	for _, m := range uploaded.FindAllStringSubmatch(log, -1) {
		if strings.HasSuffix(m[1], "/"+repo) {
			layers, _ = strconv.Atoi(m[2])
			bytes, _ = strconv.Atoi(m[3])
			found = true
		}
	}
	if !found {
		t.Fatalf("no push line for %s in the peer log:\n%s", repo, kubeccLines(log))
	}
	return layers, bytes
}

// servesNode deploys packageID as name, and invokes and queries it.
func (h *harness) servesNode(t *testing.T, name, packageID, image string, sequence int) {
	t.Helper()
	h.deploy(t, name, packageID, sequence)
	pod := h.runningPod(t, packageID, 90*time.Second)
	if got := pod.Spec.Containers[0].Image; got != image {
		t.Errorf("chaincode pod runs %s, the build pinned %s", got, image)
	}
	h.mustInvoke(t, name, "put", "k", "from-"+name)
	h.mustQuery(t, name, "from-"+name, "get", "k")
}

func TestNode(t *testing.T) {
	host := newHarness(t)
	t.Cleanup(func() {
		if t.Failed() {
			host.dumpDiagnostics(t)
		}
	})
	host.requireTLS(t)
	b := host.buildsEnv(t)
	host.withBuilderConfig(t, nodeLocalConfig(t, host, b))
	localPrefix := host.vars["REGISTRY"] + "/kubecc-node"
	run := time.Now().Unix() % 1000000
	top := t
	jsLabel := fmt.Sprintf("njs%d", run)
	var jsPkg string
	var jsImage chaincode.ImageRef

	t.Run("1 a JavaScript package from the peer CLI builds on the host (buildIn local), runs and serves", func(t *testing.T) {
		jobs := host.watchBuildJobs(t, host.ns)
		off := host.peerLogOffset(t)
		jsPkg = host.nodePackage(top, filepath.Join(host.repo, jsExample), jsLabel)
		start := time.Now()
		id := host.install(t, jsPkg)
		t.Logf("install with a local npm build: %s", time.Since(start).Round(time.Millisecond))
		log := host.peerLogSince(t, off)
		if !strings.Contains(log, "npm ci --omit=dev") {
			t.Errorf("no npm ci in the peer log:\n%s", kubeccLines(log))
		}
		if n := jobs.names(); len(n) != 0 {
			t.Errorf("build Jobs %v with buildIn local", n)
		}
		jsImage = host.pinnedImage(t, id, localPrefix)
		cf, _ := host.imageLayers(t, jsImage.Ref())
		if cf.Config.User == "" || strings.HasPrefix(cf.Config.User, "0") || strings.HasPrefix(cf.Config.User, "root") {
			t.Errorf("image user %q, want a non-root user", cf.Config.User)
		}
		if cf.Config.Labels["org.hyperledger.fabric.chaincode.type"] != "node" {
			t.Errorf("image labels %v, want type node", cf.Config.Labels)
		}
		host.servesNode(t, jsLabel, id, jsImage.Ref(), 1)
	})

	t.Run("2 a TypeScript package: the image holds the compiled JavaScript, not the compiler", func(t *testing.T) {
		label := fmt.Sprintf("nts%d", run)
		off := host.peerLogOffset(t)
		id := host.install(t, host.nodePackage(t, filepath.Join(host.repo, tsExample), label))
		if log := host.peerLogSince(t, off); !strings.Contains(log, "npm run build") || !strings.Contains(log, "npm prune --omit=dev") {
			t.Errorf("no build and prune in the peer log:\n%s", kubeccLines(log))
		}
		img := host.pinnedImage(t, id, localPrefix)
		files := host.imageFiles(t, img.Ref())
		if !files["/usr/src/app/dist/index.js"] {
			t.Errorf("the image has no /usr/src/app/dist/index.js")
		}
		for f := range files {
			if strings.Contains(f, "/node_modules/typescript/") {
				t.Fatalf("the TypeScript compiler is in the image: %s", f)
			}
		}
		host.servesNode(t, label, id, img.Ref(), 1)
	})

	t.Run("3 serverless Node.js chaincode scales to zero and wakes on the next invoke", func(t *testing.T) {
		label := fmt.Sprintf("nsl%d", run)
		dir := copyProject(t, jsExample, map[string]string{"kubecc.yaml": "launch: job\nidleTimeout: 3s\n"})
		id := host.install(t, host.nodePackage(t, dir, label))
		host.deploy(t, label, id, 1)
		host.mustInvoke(t, label, "put", "k", "v1")
		host.mustQuery(t, label, "v1", "get", "k")
		if exe := host.runExe(t, id); filepath.Base(exe) != "run-serverless" {
			t.Errorf("the serverless chaincode's run process is %s, want run-serverless (with the relay)", exe)
		}
		last := time.Now()
		eventually(t, 15*time.Second, "no pod, job or secret after the idle timeout", func() bool { return host.nothingLeft(t, id) })
		t.Logf("scaled to zero %s after the last call (idle timeout 3s)", time.Since(last).Round(time.Millisecond))
		before := host.launches(t, id)
		start := time.Now()
		host.mustQuery(t, label, "v1", "get", "k")
		t.Logf("cold query of Node.js chaincode: %s (peer CLI)", time.Since(start).Round(time.Millisecond))
		if host.launches(t, id) <= before {
			t.Errorf("the query was served without a new launch")
		}
	})

	t.Run("4 built in the cluster: the in-cluster peer's Job gives the local digest; auto builds Node.js in a Job even with npm on the host", func(t *testing.T) {
		if jsPkg == "" {
			t.Skip("needs scenario 1")
		}
		in := newInClusterHarness(t)
		jobs := in.watchBuildJobs(t, in.ns)
		peer := in.peerPod(t, "", 60*time.Second)
		start := time.Now()
		id := in.install(t, jsPkg)
		t.Logf("install with a build Job from the in-cluster peer: %s", time.Since(start).Round(time.Millisecond))
		if len(jobs.names()) != 1 {
			t.Fatalf("build Jobs seen: %v, want one", jobs.names())
		}
		ref := lastBuiltImage(in.peerPodLog(t, peer.Name), build.RepoName(jsLabel))
		_, jobDigest, _ := strings.Cut(ref, "@")
		if jobDigest == "" || jobDigest != jsImage.Digest {
			t.Fatalf("build Job %q, local build %s: not the same image", ref, jsImage.Ref())
		}
		in.noBuildObjects(t, in.ns, 15*time.Second)
		in.deploy(t, jsLabel, id, 1)
		in.runningPod(t, id, 90*time.Second)
		in.mustInvoke(t, jsLabel, "put", "k", "built-in-a-job")
		in.mustQuery(t, jsLabel, "built-in-a-job", "get", "k")

		// The host peer has npm on its PATH; with buildIn unset Node.js still builds in a Job.
		if npm := host.lookPath("npm"); !filepath.IsAbs(npm) {
			t.Fatalf("npm is not on the host peer's PATH (%s): this part proves nothing", host.vars["PATH"])
		}
		host.withBuilderConfig(t, nodeClusterConfig(t, b, "kubecc-node-auto"))
		hostJobs := host.watchBuildJobs(t, host.ns)
		off := host.peerLogOffset(t)
		autoID := host.install(t, host.nodePackage(t, filepath.Join(host.repo, jsExample), jsLabel+"_auto"))
		if n := hostJobs.names(); len(n) != 1 {
			t.Fatalf("build Jobs %v with buildIn unset and npm on PATH, want one", n)
		}
		if log := host.peerLogSince(t, off); !strings.Contains(log, "built in the cluster") {
			t.Fatalf("no 'built in the cluster' line:\n%s", kubeccLines(log))
		}
		host.pinnedImage(t, autoID, b["REGISTRY_POD"]+"/kubecc-node-auto")
		host.noBuildObjects(t, host.ns, 15*time.Second)
	})

	t.Run("5 a change to the contract only: the node_modules layer is reused, not uploaded again", func(t *testing.T) {
		if jsImage.Digest == "" {
			t.Skip("needs scenario 1")
		}
		index, err := os.ReadFile(filepath.Join("..", jsExample, "index.js"))
		if err != nil {
			t.Fatal(err)
		}
		changed := strings.Replace(string(index), "    async ping() {", "    async echo(ctx, s) {\n        return s;\n    }\n\n    async ping() {", 1)
		if changed == string(index) {
			t.Fatal("index.js has no ping method to put echo before")
		}
		dir := copyProject(t, jsExample, map[string]string{"index.js": changed})
		off := host.peerLogOffset(t)
		id := host.install(t, host.nodePackage(t, dir, jsLabel))
		img := host.pinnedImage(t, id, localPrefix)
		_, before := host.imageLayers(t, jsImage.Ref())
		_, after := host.imageLayers(t, img.Ref())
		n := len(after)
		if n != len(before) || n < 2 || after[n-2] != before[n-2] || after[n-1] == before[n-1] {
			t.Fatalf("layers before %v, after %v: want the same node_modules layer and a new application layer", before, after)
		}
		layers, bytes := uploadedLayers(t, host.peerLogSince(t, off), build.RepoName(jsLabel))
		if layers != 1 {
			t.Fatalf("the push uploaded %d layers (%d bytes), want only the application layer", layers, bytes)
		}
		t.Logf("rebuild after a contract change uploaded %d layer, %d bytes", layers, bytes)
		host.deploy(t, jsLabel, id, 2)
		host.runningPod(t, id, 90*time.Second)
		host.mustQuery(t, jsLabel, "hello", "echo", "hello")
	})

	t.Run("6 a TypeScript build script that fails: install fails with the compiler's output, nothing pushed", func(t *testing.T) {
		label := uniqueLabel("ntsbad")
		marker := fmt.Sprintf("kubeccBrokenOnPurpose%d", run)
		dir := copyProject(t, tsExample, map[string]string{
			"src/broken.ts": "export const " + marker + ": number = 'not a number';\n",
		})
		pkg := host.nodePackage(t, dir, label)
		off := host.peerLogOffset(t)
		start := time.Now()
		out, _ := host.installRefused(t, pkg)
		log := host.peerLogSince(t, off)
		if !strings.Contains(log, "TS2322") || !strings.Contains(log, "broken.ts") {
			t.Fatalf("the compiler's error is not in the peer log:\n%s", kubeccLines(log))
		}
		if !strings.Contains(log, `script "build"`) {
			t.Errorf("the error does not name the build script:\n%s", kubeccLines(log))
		}
		t.Logf("peer CLI: %s", lastLine(out))
		host.notInstalled(t, label)
		host.registryHasNo(t, build.RepoName(label), marker, start)
	})
}
