package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecc/kubecc/pkg/build/node"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/fsutil"
	"github.com/kubecc/kubecc/pkg/podspec"
)

func init() {
	register(Benchmark{ID: "P7", Title: "Node.js chaincode: build + push vs npm alone, image size vs its base, resident launch and cold start next to Go", Run: runP7})
}

const (
	p7JS = "examples/chaincode/js"
	p7TS = "examples/chaincode/ts"
)

// p7Build is one `kubecc build` of a Node.js project.
type p7Build struct {
	t        *Timed
	ref      string
	layers   int   // layers the push uploaded
	uploaded int64 // bytes it uploaded
}

// p7Results is everything P7 measures, for its report.
type p7Results struct {
	nodeImage string

	jsFresh, jsRebuild []*p7Build
	jsNpm              Sample // npm ci --omit=dev alone
	tsFresh            []*p7Build
	tsNpm              Sample // npm ci --include=dev, npm run build, npm prune --omit=dev
	reusedModules      int    // rebuilds whose node_modules layer was the fresh build's

	baseSize, imageSize int64
	modulesLayer        int64 // compressed
	appLayer            int64
	imageDigests        map[string]bool // of the fresh JS builds: reproducible means one

	goRes, jsRes               *p2Side
	goCold, jsCold             Sample
	goResPhases, jsResPhases   map[string][]float64
	goColdPhases, jsColdPhases map[string][]float64
	nodeBare, nodeShim         Sample // in the chaincode image, in a pod
	nodeModules, nodeUp        Sample
	hostBare                   Sample // the same node binary on the host
	fabric                     string // the peer's release
}

// runP7 measures kubecc's Node.js support against plain npm and the runtime base,
// and launches Node.js chaincode the way P2 and P3 launch Go, next to Go.
func runP7(ctx context.Context, env *Env) (string, error) {
	hv, err := harnessVars("builds.env", "cluster/env")
	if err != nil {
		return "", err
	}
	r := &p7Results{nodeImage: hv["NODE_IMAGE"], imageDigests: map[string]bool{}}
	if r.nodeImage == "" {
		return "", fmt.Errorf("builds.env has no NODE_IMAGE: e2e/up.sh builds the Node.js image (e2e/cluster/toolimage.sh node)")
	}
	work, err := os.MkdirTemp("", "kubecc-bench-p7-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(work) }()
	if err := p7Builds(ctx, env, hv, work, r); err != nil {
		return "", err
	}
	if err := p7Sizes(ctx, env, r); err != nil {
		return "", err
	}
	if err := p7Launches(ctx, env, work, r); err != nil {
		return "", err
	}
	return r.markdown(env), nil
}

var p7Pushed = regexp.MustCompile(`kubecc: pushed \S+ \(\d+ bytes compressed; uploaded (\d+) layers, (\d+) bytes\)`)

// p7Builds times kubecc's builds of the examples against npm alone, each in a fresh
// copy of the source, kubecc into a fresh repository; then rebuilds after a change
// to the contract alone, into the fresh builds' repositories.
func p7Builds(ctx context.Context, env *Env, hv map[string]string, work string, r *p7Results) error {
	kubecc := filepath.Join(env.Root, "bin", "kubecc")
	kubeccEnv := withEnv(without(os.Environ(), "KUBECC_CONFIG", "KUBECC_REGISTRY", "KUBECC_BUILD_IN", "KUBECC_BUILD_CACHE", "KUBECC_GOARCH"),
		"KUBECC_BUILD_IN=local", "KUBECC_NODE_BASE_IMAGE="+r.nodeImage, "KUBECC_REGISTRY_INSECURE=true", "KUBECC_INSECURE_REGISTRIES="+hv["REGISTRY_POD"])
	// The baseline's npm gets the environment kubecc gives npm: the same settings, cache and registry.
	npmEnv := node.Env(os.Environ())
	build := func(ctx context.Context, dir, repo string) (*p7Build, error) {
		t, err := timed(ctx, env.Root, kubeccEnv, kubecc, "build", "--registry", repo, dir)
		if err != nil {
			return nil, err
		}
		if _, _, reused := t.First("reused, nothing compiled"); reused {
			return nil, fmt.Errorf("build of %s into %s was reused, not built", dir, repo)
		}
		_, line, _ := t.First("kubecc: pushed ")
		m := p7Pushed.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("build of %s: no push line with the upload in its output", dir)
		}
		b := &p7Build{t: t, ref: lastLine(t.Stdout)}
		b.layers, _ = strconv.Atoi(m[1])
		b.uploaded, _ = strconv.ParseInt(m[2], 10, 64)
		return b, nil
	}
	npm := func(ctx context.Context, dir string, steps ...[]string) (float64, error) {
		total := 0.0
		for _, args := range steps {
			t, err := timed(ctx, dir, npmEnv, "npm", args...)
			if err != nil {
				return 0, err
			}
			total += t.Wall.Seconds()
		}
		return total, nil
	}
	jsNpm := [][]string{{"ci", "--omit=dev"}}
	tsNpm := [][]string{{"ci", "--include=dev"}, {"run", "build"}, {"prune", "--omit=dev"}}
	repo := func(kind string, i int) string {
		return fmt.Sprintf("%s/bench-p7-%s-%s-%d", env.Registry, kind, env.RunID, i)
	}
	copyOf := func(example, kind string, i int, files map[string]string) (string, error) {
		return p7Copy(filepath.Join(env.Root, example), filepath.Join(work, fmt.Sprintf("%s-%d", kind, i)), files)
	}

	// Warm-up, not timed: npm's cache holds every dependency, the base is fetched.
	dir, err := copyOf(p7JS, "warm-k", 0, nil)
	if err != nil {
		return err
	}
	if _, err := build(ctx, dir, repo("warm", 0)); err != nil {
		return err
	}
	for _, w := range []struct {
		example string
		steps   [][]string
	}{{p7JS, jsNpm}, {p7TS, tsNpm}} {
		dir, err := copyOf(w.example, "warm-n", 0, nil)
		if err != nil {
			return err
		}
		if _, err := npm(ctx, dir, w.steps...); err != nil {
			return err
		}
		_ = os.RemoveAll(filepath.Dir(dir))
	}

	// kubecc and npm alternated, so that drift hits both alike.
	for _, ex := range []struct {
		example string
		steps   [][]string
		fresh   *[]*p7Build
		npm     *Sample
	}{{p7JS, jsNpm, &r.jsFresh, &r.jsNpm}, {p7TS, tsNpm, &r.tsFresh, &r.tsNpm}} {
		lang := filepath.Base(ex.example)
		for i := 0; i < env.N; i++ {
			sides := []func() error{
				func() error {
					dir, err := copyOf(ex.example, lang+"-k", i, nil)
					if err != nil {
						return err
					}
					b, err := build(ctx, dir, repo(lang, i))
					if err != nil {
						return err
					}
					*ex.fresh = append(*ex.fresh, b)
					env.Logf("P7 %s run %d/%d kubecc %6.2f s, uploaded %d layers, %d bytes", lang, i+1, env.N, b.t.Wall.Seconds(), b.layers, b.uploaded)
					return nil
				},
				func() error {
					dir, err := copyOf(ex.example, lang+"-n", i, nil)
					if err != nil {
						return err
					}
					v, err := npm(ctx, dir, ex.steps...)
					if err != nil {
						return err
					}
					*ex.npm = append(*ex.npm, v)
					env.Logf("P7 %s run %d/%d npm    %6.2f s", lang, i+1, env.N, v)
					return os.RemoveAll(filepath.Dir(dir))
				},
			}
			if i%2 == 1 {
				sides[0], sides[1] = sides[1], sides[0]
			}
			for _, side := range sides {
				if err := side(); err != nil {
					return fmt.Errorf("%s: %w", lang, err)
				}
			}
		}
	}

	// A new contract method, nothing else: the same dependencies.
	index, err := os.ReadFile(filepath.Join(env.Root, p7JS, "index.js"))
	if err != nil {
		return err
	}
	changed := strings.Replace(string(index), "    async ping() {", "    async echo(ctx, s) {\n        return s;\n    }\n\n    async ping() {", 1)
	if changed == string(index) {
		return fmt.Errorf("%s/index.js has no ping method to put echo before", p7JS)
	}
	for i := 0; i < env.N; i++ {
		dir, err := copyOf(p7JS, "js-r", i, map[string]string{"index.js": changed})
		if err != nil {
			return err
		}
		b, err := build(ctx, dir, repo("js", i))
		if err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
		r.jsRebuild = append(r.jsRebuild, b)
		before, err := manifestLayers(ctx, r.jsFresh[i].ref)
		if err != nil {
			return err
		}
		after, err := manifestLayers(ctx, b.ref)
		if err != nil {
			return err
		}
		if n := len(after); n >= 2 && n == len(before) && after[n-2].Digest == before[n-2].Digest && after[n-1].Digest != before[n-1].Digest {
			r.reusedModules++
		}
		env.Logf("P7 js rebuild %d/%d %6.2f s, uploaded %d layers, %d bytes", i+1, env.N, b.t.Wall.Seconds(), b.layers, b.uploaded)
	}
	return nil
}

// p7Copy copies a Node.js example into a folder under parent named like the example
// (kubecc's label, so the repository's name), without node_modules or build output a
// developer may have left, and writes files over it.
func p7Copy(src, parent string, files map[string]string) (string, error) {
	dir := filepath.Join(parent, filepath.Base(src))
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && (d.Name() == "node_modules" || d.Name() == "dist"):
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		default:
			return fsutil.CopyFile(p, filepath.Join(dir, rel))
		}
	})
	if err != nil {
		return "", err
	}
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// manifestLayers are the layer descriptors of an image's linux/amd64 manifest.
func manifestLayers(ctx context.Context, ref string) ([]v1.Descriptor, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", ref, err)
	}
	return m.Layers, nil
}

// p7Sizes reads the compressed sizes of the runtime base and the fresh JS image.
func p7Sizes(ctx context.Context, env *Env, r *p7Results) error {
	var err error
	if r.baseSize, err = imageSize(ctx, r.nodeImage); err != nil {
		return err
	}
	for _, b := range r.jsFresh {
		r.imageDigests[digestOf(b.ref)] = true
	}
	ref := r.jsFresh[0].ref
	if r.imageSize, err = imageSize(ctx, ref); err != nil {
		return err
	}
	layers, err := manifestLayers(ctx, ref)
	if err != nil {
		return err
	}
	if len(layers) < 2 {
		return fmt.Errorf("%s has %d layers, want the base's, node_modules and the application", ref, len(layers))
	}
	r.modulesLayer, r.appLayer = layers[len(layers)-2].Size, layers[len(layers)-1].Size
	if len(r.imageDigests) != 1 {
		env.Logf("P7 note: the fresh JS builds gave %d digests", len(r.imageDigests))
	}
	return nil
}

// p7Launches deploys Go and JS chaincode as resident and as serverless (idle timeout
// 0s) image packages on the host peer, relaunches the residents as P2 does and cold
// starts the serverless ones as P3 does, alternating Go and JS; then times Node's own
// start-up in the JS image.
func p7Launches(ctx context.Context, env *Env, work string, r *p7Results) error {
	n, err := openNetwork(env.Root)
	if err != nil {
		return err
	}
	defer n.close()
	if out, err := n.run(ctx, "peer", "version"); err == nil {
		if m := regexp.MustCompile(`(?m)^\s*Version: (\S+)`).FindStringSubmatch(out); m != nil {
			r.fabric = m[1]
		}
	}
	tag := strings.ToLower(env.RunID)
	// The JS packages name the image measured above: built once, by digest.
	jsRef := r.jsFresh[0].ref
	deploy := func(label, lang string, extra ...string) (string, error) {
		var pkg string
		var err error
		if lang == "go" {
			pkg, err = n.kubeccPackage(ctx, work, label, extra...)
		} else {
			pkg, err = n.kubeccPackageOf(ctx, "", nil, work, label, append(extra, "--image", jsRef)...)
		}
		if err != nil {
			return "", err
		}
		return n.deploy(ctx, label, pkg)
	}
	type cc struct{ name, lang, id string }
	ccs := []*cc{{"p7gr" + tag, "go", ""}, {"p7jr" + tag, "js", ""}, {"p7gc" + tag, "go", ""}, {"p7jc" + tag, "js", ""}}
	for i, c := range ccs {
		extra := []string{"--launch", "pod"}
		if i >= 2 {
			extra = []string{"--launch", "job", "--idle-timeout", "0s"}
		}
		if c.id, err = deploy(c.name, c.lang, extra...); err != nil {
			return err
		}
	}
	goRes, jsRes, goCold, jsCold := ccs[0], ccs[1], ccs[2], ccs[3]
	defer stopChaincodes(context.WithoutCancel(ctx), n, goRes.id, jsRes.id)
	for _, c := range ccs {
		if _, err := n.contract(c.name).SubmitTransaction("put", "k", "v"); err != nil {
			return fmt.Errorf("first call of %s: %w", c.name, err)
		}
	}

	r.goRes = &p2Side{what: "Go", name: goRes.name, id: goRes.id, pod: true, stop: kubeccPodStop(n, goRes.id)}
	r.jsRes = &p2Side{what: "JS", name: jsRes.name, id: jsRes.id, pod: true, stop: kubeccPodStop(n, jsRes.id)}
	runs := relaunchRuns(env)
	env.Logf("P7: %d relaunches each, Go and JS alternated", runs)
	for i := 0; i < runs; i++ {
		order := []*p2Side{r.goRes, r.jsRes}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, s := range order {
			if err := s.relaunch(ctx, env, n, i); err != nil {
				return err
			}
		}
	}

	// Each step is cheap, and they differ by less than the noise of a few runs.
	steps := coldCycles(env)
	env.Logf("P7: Node's start-up in the JS image, %d runs", steps)
	if err := p7NodeStartup(ctx, n, jsRef, steps, r); err != nil {
		return fmt.Errorf("node start-up: %w", err)
	}
	for i := 0; i < steps; i++ {
		t, err := timed(ctx, env.Root, nil, "node", "-e", "0")
		if err != nil {
			return err
		}
		r.hostBare = append(r.hostBare, t.Wall.Seconds())
	}

	cycles := coldCycles(env)
	env.Logf("P7: %d cold queries each, %s after scale to zero, Go and JS alternated", cycles, p3Settle)
	for i := 0; i < cycles; i++ {
		order := []struct {
			c *cc
			s *Sample
		}{{goCold, &r.goCold}, {jsCold, &r.jsCold}}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, o := range order {
			v, err := coldQuery(ctx, n, o.c.name, o.c.id, p3Settle)
			if err != nil {
				return fmt.Errorf("cold query %d of %s: %w", i, o.c.name, err)
			}
			*o.s = append(*o.s, v)
		}
	}
	peerLog := filepath.Join(n.root, "logs", "peer.log")
	r.goResPhases, r.jsResPhases = p2PodPhases(peerLog, goRes.id), p2PodPhases(peerLog, jsRes.id)
	r.goColdPhases, r.jsColdPhases = launchPhases(peerLog, goCold.id), launchPhases(peerLog, jsCold.id)
	return nil
}

// p7NodeScript runs in the chaincode image and times, from inside the container, the
// runtime alone, the runtime loading fabric-shim, then the chaincode's modules, and the
// image's own entry point until the chaincode dials its peer (a listener in the same
// pod). Run 0 is a warm-up; each run starts at another step, so that drift hits them
// alike. It prints one line: P7NODE {"bare":[s...],"shim":[...],...}.
const p7NodeScript = `
const { spawn, spawnSync } = require('child_process');
const net = require('net');
const runs = Number(process.env.P7_RUNS);
const entry = JSON.parse(process.env.P7_ENTRYPOINT);
const now = () => Number(process.hrtime.bigint()) / 1e9;
function once(args) {
  const t = now();
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('node ' + args.join(' ') + ': exit ' + r.status);
  return now() - t;
}
function dial(srv, port) {
  const t = now();
  const child = spawn(entry[0], entry.slice(1).concat('--peer.address=127.0.0.1:' + port), { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the chaincode did not dial in 60 s')), 60000);
    child.once('exit', (code) => reject(new Error('the chaincode exited (' + code + ') before it dialed')));
    srv.once('connection', (c) => {
      const d = now() - t;
      clearTimeout(timer);
      c.destroy();
      child.removeAllListeners('exit');
      child.once('exit', () => resolve(d));
      child.kill('SIGKILL');
    });
  });
}
(async () => {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const port = srv.address().port;
  const steps = {
    bare: async () => once(['-e', '0']),
    shim: async () => once(['-e', "require('fabric-shim')"]),
    modules: async () => once(['-e', "require('fabric-shim'); require('./index.js')"]),
    dial: () => dial(srv, port),
  };
  const names = Object.keys(steps);
  const out = {};
  names.forEach((k) => { out[k] = []; });
  for (let i = 0; i <= runs; i++) {
    for (let j = 0; j < names.length; j++) {
      const k = names[(i + j) % names.length];
      const v = await steps[k]();
      if (i > 0) out[k].push(v);
    }
  }
  console.log('P7NODE ' + JSON.stringify(out));
  process.exit(0);
})().catch((e) => { console.error(e && e.stack || String(e)); process.exit(1); });
`

// p7NodeStartup runs p7NodeScript in a pod of the chaincode image with the pod spec
// kubecc's run gives chaincode (pkg/podspec, the host peer's builder config; no TLS
// Secret: nothing here dials the peer).
func p7NodeStartup(ctx context.Context, n *network, ref string, runs int, r *p7Results) error {
	repo, digest, ok := strings.Cut(ref, "@")
	if !ok {
		return fmt.Errorf("%s is not pinned by digest", ref)
	}
	pr, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(pr, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	entry, err := json.Marshal(append(cf.Config.Entrypoint, cf.Config.Cmd...))
	if err != nil {
		return err
	}
	cfg, err := config.Load(n.vars["KUBECC_BUILDER_DIR"], func(string) (string, bool) { return "", false })
	if err != nil {
		return err
	}
	p := &podspec.Params{Config: cfg, Image: chaincode.ImageRef{Name: repo, Digest: digest}, ChaincodeID: "p7-node-startup:0",
		MSPID: n.vars["CORE_PEER_LOCALMSPID"], PeerAddress: "127.0.0.1:7052"}
	spec := p.PodSpec("")
	c := &spec.Containers[0]
	c.Command, c.Args = []string{"node", "-e", p7NodeScript}, nil
	c.Env = append(c.Env, corev1.EnvVar{Name: "P7_ENTRYPOINT", Value: string(entry)}, corev1.EnvVar{Name: "P7_RUNS", Value: strconv.Itoa(runs)})
	pods := n.kube.CoreV1().Pods(cfg.Namespace)
	pod, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "kubecc-bench-p7-node-", Labels: map[string]string{"kubecc.io/bench": "p7"}}, Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	defer func() {
		zero := int64(0)
		_ = pods.Delete(context.WithoutCancel(ctx), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s still %s after 3 minutes", pod.Name, got.Status.Phase)
		}
		time.Sleep(250 * time.Millisecond)
	}
	logs, err := pods.GetLogs(pod.Name, &corev1.PodLogOptions{}).Do(ctx).Raw()
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(logs), "\n") {
		if js, ok := strings.CutPrefix(line, "P7NODE "); ok {
			var out struct{ Bare, Shim, Modules, Dial []float64 }
			if err := json.Unmarshal([]byte(js), &out); err != nil {
				return fmt.Errorf("pod %s: %w", pod.Name, err)
			}
			r.nodeBare, r.nodeShim, r.nodeModules, r.nodeUp = out.Bare, out.Shim, out.Modules, out.Dial
			return nil
		}
	}
	return fmt.Errorf("pod %s printed no result:\n%s", pod.Name, logs)
}

func (r *p7Results) markdown(env *Env) string {
	wall := func(bs []*p7Build) Sample {
		var s Sample
		for _, b := range bs {
			s = append(s, b.t.Wall.Seconds())
		}
		return s
	}
	up := func(bs []*p7Build) (layers, bytes Sample) {
		for _, b := range bs {
			layers, bytes = append(layers, float64(b.layers)), append(bytes, float64(b.uploaded))
		}
		return
	}
	count := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	kib := func(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }
	jk, tk, jr := wall(r.jsFresh), wall(r.tsFresh), wall(r.jsRebuild)
	fl, fb := up(r.jsFresh)
	rl, rb := up(r.jsRebuild)

	var b strings.Builder
	b.WriteString(env.Machine.Markdown(env.Command))
	fmt.Fprintf(&b, "\nBuilds: N=%d per figure, kubecc and the baseline alternated; launches: %d relaunches and %d cold queries per chaincode, Go and JS alternated. Figures are median (min–max).\n\n", env.N, len(r.goRes.first), len(r.jsCold))
	b.WriteString("| figure | kubecc | baseline | ratio kubecc/baseline | kubecc adds |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| JS (`examples/chaincode/js`): `kubecc build`, fresh repository, vs `npm ci --omit=dev` alone in a fresh copy | %s | %s | %.2f | %s |\n",
		jk.Format(secs), r.jsNpm.Format(secs), jk.Median()/r.jsNpm.Median(), secs(jk.Median()-r.jsNpm.Median()))
	fmt.Fprintf(&b, "| TS (`examples/chaincode/ts`): `kubecc build`, fresh repository, vs `npm ci --include=dev`, `npm run build`, `npm prune --omit=dev` | %s | %s | %.2f | %s |\n",
		tk.Format(secs), r.tsNpm.Format(secs), tk.Median()/r.tsNpm.Median(), secs(tk.Median()-r.tsNpm.Median()))
	fmt.Fprintf(&b, "| JS image, compressed (manifest + config + layers), vs the runtime base alone | %s | %s | %.2f | %s: node_modules layer %s, application layer %s, manifest and config %s |\n",
		mib(float64(r.imageSize)), mib(float64(r.baseSize)), float64(r.imageSize)/float64(r.baseSize), mib(float64(r.imageSize-r.baseSize)),
		mib(float64(r.modulesLayer)), kib(float64(r.appLayer)), kib(float64(r.imageSize-r.baseSize-r.modulesLayer-r.appLayer)))
	b.WriteString("\n| JS rebuild after a change to the contract only (`index.js`: a new method), into the fresh build's repository | wall | layers uploaded | bytes uploaded |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| fresh build (new repository) | %s | %s | %s |\n", jk.Format(secs), fl.Format(count), fb.Format(mib))
	fmt.Fprintf(&b, "| rebuild after the change | %s | %s | %s |\n\n", jr.Format(secs), rl.Format(count), rb.Format(kib))
	fmt.Fprintf(&b, "In %d of %d rebuilds the node_modules layer had the fresh build's digest and only the application layer changed; npm ci still ran (the content hash covers the whole package), the push skipped the layer the registry held.\n\n", r.reusedModules, len(r.jsRebuild))

	var ph []Sample
	for _, f := range r.jsFresh {
		if p, ok := phases(f.t, "kubecc: npm ci", "kubecc: npm ci done", "kubecc: compiled in", "kubecc: pushed "); ok {
			if ph == nil {
				ph = make([]Sample, len(p))
			}
			for i := range p {
				ph[i] = append(ph[i], p[i])
			}
		}
	}
	if ph != nil {
		b.WriteString("Where a fresh JS build's time goes (split at kubecc's progress lines on stderr, as they arrived):\n\n| phase | time |\n|---|---|\n")
		for i, what := range []string{
			"start → npm starts (copy and hash the source, fetch the base's manifest, ask the registry for the image)",
			"`npm ci --omit=dev` (the same command as the baseline)",
			"npm done → compiled (collect the files of both layers)",
			"compiled → pushed (tar + gzip of both layers, image config, push)",
			"exit",
		} {
			fmt.Fprintf(&b, "| %s | %s |\n", what, ph[i].Format(secs))
		}
		b.WriteString("\n")
	}

	g, j := r.goRes, r.jsRes
	row := func(what string, gs, js Sample) {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %s |\n", what, gs.Format(ms), js.Format(ms), js.Median()/gs.Median(), ms(js.Median()-gs.Median()))
	}
	b.WriteString("Launches, measured as P2 (resident) and P3 (serverless) measure them, Go (`examples/chaincode/go`) and JS side by side on the same peer:\n\n")
	b.WriteString("| figure | Go | JS | ratio JS/Go | JS − Go |\n|---|---|---|---|---|\n")
	row("resident: first query after the chaincode was stopped, wall time at the client", g.first, j.first)
	row("resident: peer's `chaincode_launch_duration` of that relaunch (run started → chaincode registered)", g.launch, j.launch)
	row("resident: the chaincode process starts (the pod's container process, from `/proc`, ±10 ms; since the query was sent)", g.ccAt, j.ccAt)
	row("resident: that process started → registered with the peer (the chaincode's own start-up)", g.own, j.own)
	row("resident: the next query (chaincode running), for reference", g.second, j.second)
	row(fmt.Sprintf("serverless: cold query %s after scale to zero (idle timeout 0s)", p3Settle), r.goCold, r.jsCold)
	// Not "container started": the kubelet reports it late (P2).
	for _, p := range []string{"pod created", "pod scheduled"} {
		gs, js := p7Phase(r.goResPhases, p), p7Phase(r.jsResPhases, p)
		if len(gs) > 0 && len(js) > 0 {
			row("resident, `run`'s phase line: "+p+" (since run started)", gs, js)
		}
	}
	for _, p := range []string{"job created", "pod scheduled", "chaincode connected"} {
		gs, js := p7Phase(r.goColdPhases, p), p7Phase(r.jsColdPhases, p)
		if len(gs) > 0 && len(js) > 0 {
			row("serverless, `run`'s phase line: "+p+" (since the launch began; all launches of the package)", gs, js)
		}
	}

	fmt.Fprintf(&b, "\nNode's own start-up, timed inside the JS chaincode image: a pod with the chaincode's pod spec (`podspec.Params.PodSpec` with the host peer's builder config: non-root, read-only root, /tmp emptyDir, seccomp RuntimeDefault; no TLS Secret) runs a Node.js script that starts each step as a child process and times it with `process.hrtime` (%d runs after one warm-up, each run starting at the next step):\n\n", len(r.nodeBare))
	b.WriteString("| step | wall time in the container |\n|---|---|\n")
	fmt.Fprintf(&b, "| `node -e 0`: the runtime starts and exits | %s |\n", r.nodeBare.Format(ms))
	fmt.Fprintf(&b, "| `node -e \"require('fabric-shim')\"`: the runtime and the shim's modules (grpc-js, the Fabric protos on protobufjs, winston...) | %s |\n", r.nodeShim.Format(ms))
	fmt.Fprintf(&b, "| `node -e \"require('fabric-shim'); require('./index.js')\"`: and the contract, with fabric-contract-api (ajv, class-transformer...) | %s |\n", r.nodeModules.Format(ms))
	fmt.Fprintf(&b, "| the image's entry point (`/bin/sh -c … exec fabric-chaincode-node start`, plain TCP) until the chaincode dials its peer address (a listener in the same script) | %s |\n", r.nodeUp.Format(ms))
	fmt.Fprintf(&b, "| for reference: `node -e 0` on the host (the same node binary: the image is made from it), timed by the bench (started by a Go process, not by a Node parent) | %s |\n\n", r.hostBare.Format(ms))

	extra := j.first.Median() - g.first.Median()
	fmt.Fprintf(&b, "What is kubecc and what is Node: a JS relaunch takes %s more than a Go one. Up to the chaincode's process start the two are the same pod spec and the same `run` (%s for JS, %s for Go): kubecc's and the kubelet's part does not depend on the language. ",
		ms(extra), ms(j.ccAt.Median()), ms(g.ccAt.Median()))
	fmt.Fprintf(&b, "The difference is the chaincode's own start-up, process start → registered: %s for JS against %s for Go. Inside the image, the runtime alone takes %s; with fabric-shim's modules %s, with the contract's as well %s; and the chaincode dials the peer %s after its entry point starts: loading modules, not the runtime, is most of Node's start-up. The rest of JS's %s, %s, is the container's own start (`/proc` dates the process from before the container runtime's exec; at most Go's whole %s), the TLS handshake and the registration with the peer. ",
		ms(j.own.Median()), ms(g.own.Median()), ms(r.nodeBare.Median()), ms(r.nodeShim.Median()), ms(r.nodeModules.Median()), ms(r.nodeUp.Median()),
		ms(j.own.Median()), ms(j.own.Median()-r.nodeUp.Median()), ms(g.own.Median()))
	fmt.Fprintf(&b, "A serverless cold query shows the same: %s for JS against %s for Go.\n\n", ms(r.jsCold.Median()), ms(r.goCold.Median()))

	fmt.Fprintf(&b, "Setup: `bin/kubecc build` with `KUBECC_BUILD_IN=local` (npm on the host), `KUBECC_NODE_BASE_IMAGE` = the harness's Node.js image (`%s`, made from this machine's node by e2e/cluster/toolimage.sh node), pushing to the harness registry (`%s/bench-p7-<lang>-<run id>-<n>`, new for each fresh build). ", r.nodeImage, env.Registry)
	b.WriteString("Every build, kubecc's and the baseline's, starts from a fresh copy of the example without node_modules; the baseline's npm runs with the environment kubecc gives npm (`node.Env`: audit, fund and update checks off) and the same warm npm cache (one untimed kubecc build and one untimed baseline of each example first). ")
	b.WriteString("The rebuild copies the example with `index.js` changed (an `echo` method added) and builds it into the repository of the fresh build with the same index. ")
	b.WriteString("Sizes are compressed sizes in the registry from the manifests (go-containerregistry), the base's by the digest kubecc pinned. ")
	fmt.Fprintf(&b, "Launches: four `kubecc package` image packages on the host peer (Fabric %s): Go built from source as in P2 and P3, JS naming the image of the first fresh build (`--image`, by digest); resident (`--launch pod`) and serverless (`--launch job --idle-timeout 0s`); each called once before any figure, so the images are on the node. Relaunches, process start times and the peer's histogram as in P2; cold queries as in P3, %s after the chaincode scaled to zero; phase lines from the peer log.\n", r.fabric, p3Settle)
	if len(r.imageDigests) != 1 {
		fmt.Fprintf(&b, "\nThe %d fresh JS builds gave %d different digests (a reproducible build gives one).\n", len(r.jsFresh), len(r.imageDigests))
	}
	return b.String()
}

// p7Phase is the samples of one phase from p2PodPhases or launchPhases.
func p7Phase(m map[string][]float64, phase string) Sample {
	if len(m[phase]) < 2 {
		return nil
	}
	return Sample(m[phase][1:])
}
