//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubecc/kubecc/pkg/build"
)

// buildJobs records the build Jobs created in a namespace while it runs.
type buildJobs struct {
	mu   sync.Mutex
	seen map[string]time.Time // name → first seen
	jobs map[string]*batchv1.Job
	stop context.CancelFunc
	done chan struct{}
}

func (h *harness) watchBuildJobs(t *testing.T, ns string) *buildJobs {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := h.kube.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "kubecc.io/build"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	b := &buildJobs{seen: map[string]time.Time{}, jobs: map[string]*batchv1.Job{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		defer w.Stop()
		for ev := range w.ResultChan() {
			if j, ok := ev.Object.(*batchv1.Job); ok && ev.Type == watch.Added {
				b.mu.Lock()
				if _, ok := b.seen[j.Name]; !ok {
					b.seen[j.Name] = time.Now()
					b.jobs[j.Name] = j
				}
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *buildJobs) close() {
	b.stop()
	<-b.done
}

func (b *buildJobs) names() map[string]time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]time.Time{}
	for k, v := range b.seen {
		out[k] = v
	}
	return out
}

// specs returns the Jobs as they were created.
func (b *buildJobs) specs() []*batchv1.Job {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*batchv1.Job
	for _, j := range b.jobs {
		out = append(out, j)
	}
	return out
}

// noBuildObjects waits until no build Job or build pod is left in ns.
func (h *harness) noBuildObjects(t *testing.T, ns string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "no build Job or pod left in "+ns, func() bool {
		jobs, err1 := h.kube.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "kubecc.io/build"})
		pods, err2 := h.kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "kubecc.io/build"})
		return err1 == nil && err2 == nil && len(jobs.Items) == 0 && len(pods.Items) == 0
	})
}

// buildsEnv reads what e2e/up.sh recorded for builds in the cluster.
func (h *harness) buildsEnv(t *testing.T) map[string]string {
	t.Helper()
	vars, err := loadEnvFile(filepath.Join(h.root, "builds.env"))
	if err != nil {
		t.Skipf("no builds in the cluster on this harness (%v): run e2e/up.sh", err)
	}
	return vars
}

// withBuilderConfig sets keys of the host peer's builder config.yaml for the test (an
// empty value removes the key) and restores the file after it (the hooks read it at
// every call).
func (h *harness) withBuilderConfig(t *testing.T, set map[string]string) {
	t.Helper()
	file := filepath.Join(h.root, "builder", "config.yaml")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	write := func(data []byte) error {
		tmp := file + ".e2e"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, file)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(orig), "\n"), "\n") {
		key, _, _ := strings.Cut(l, ":")
		if _, replaced := set[strings.TrimSpace(key)]; !replaced {
			lines = append(lines, l)
		}
	}
	for k, v := range set {
		if v != "" {
			lines = append(lines, k+": "+v)
		}
	}
	t.Cleanup(func() {
		if err := write(orig); err != nil {
			t.Errorf("restore %s: %v", file, err)
		}
	})
	if err := write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
}

// clusterBuildConfig is the host peer's config for builds in Jobs: the registry by the
// address pods reach, and what the Job needs.
func clusterBuildConfig(b map[string]string) map[string]string {
	return map[string]string{
		"registry":           b["REGISTRY_POD"] + "/kubecc",
		"insecureRegistries": "[" + b["REGISTRY_POD"] + "]",
		"buildIn":            "cluster",
		"kubeccImage":        b["KUBECC_IMAGE"],
		"buildImages":        "{golang: " + b["GO_TOOLCHAIN_IMAGE"] + "}",
		"buildEnv":           fmt.Sprintf("{GOPROXY: %q}", b["BUILD_GOPROXY"]),
		"buildTimeout":       "5m",
		"buildCache":         "kubecc-build-cache",
	}
}

var builtInCluster = regexp.MustCompile(`built in the cluster: (\S+@sha256:[0-9a-f]{64})`)

// brokenPackage is a Go source package that does not compile.
func (h *harness) brokenPackage(t *testing.T, label string) string {
	t.Helper()
	dir := t.TempDir()
	copyExample(t, dir)
	writeFiles(t, dir, map[string]string{"broken.go": "package main\n\nfunc broken() { undefinedOnPurpose() }\n"})
	return h.packageSource(t, dir, label)
}

// lastBuiltImage is the image the last build Job of repo (a package label's repository)
// reported in log.
func lastBuiltImage(log, repo string) string {
	ref := ""
	for _, m := range builtInCluster.FindAllStringSubmatch(log, -1) {
		if strings.Contains(m[1], "/"+repo+"@") {
			ref = m[1]
		}
	}
	return ref
}

func TestClusterBuild(t *testing.T) {
	host := newHarness(t)
	in := newInClusterHarness(t)
	b := host.buildsEnv(t)
	top := t
	run := time.Now().Unix() % 1000000
	label := fmt.Sprintf("cb%d_1", run)
	var pkg, digestRef string

	t.Run("1 the in-cluster peer (no toolchain) builds a Go source package in a Job, and it serves", func(t *testing.T) {
		jobs := in.watchBuildJobs(t, in.ns)
		peer := in.peerPod(t, "", 60*time.Second)
		pkg = in.goPackage(top, label) // scenarios 2 and 3 install it too
		start := time.Now()
		id := in.install(t, pkg)
		t.Logf("install with a build in the cluster: %s", time.Since(start).Round(time.Millisecond))
		if len(jobs.names()) != 1 {
			t.Fatalf("build Jobs seen: %v, want one", jobs.names())
		}
		digestRef = lastBuiltImage(in.peerPodLog(t, peer.Name), build.RepoName(label))
		if digestRef == "" {
			t.Fatalf("no 'built in the cluster' line for %s in the peer log", label)
		}
		if !strings.HasPrefix(digestRef, b["REGISTRY_POD"]+"/kubecc/") {
			t.Fatalf("image %s is not under the configured registry", digestRef)
		}
		in.noBuildObjects(t, in.ns, 15*time.Second)
		name := fmt.Sprintf("cb%d", run)
		in.deploy(t, name, id, 1)
		in.runningPod(t, id, 60*time.Second)
		in.mustInvoke(t, name, "put", "k", "built-in-a-job")
		in.mustQuery(t, name, "built-in-a-job", "get", "k")
		if pod := in.runningPod(t, id, 10*time.Second); pod.Spec.Containers[0].Image != digestRef {
			t.Errorf("chaincode runs %s, the build Job reported %s", pod.Spec.Containers[0].Image, digestRef)
		}
	})

	t.Run("2 the same package built locally on the host gives the same digest", func(t *testing.T) {
		if pkg == "" {
			t.Skip("needs scenario 1")
		}
		// Another repository prefix, so that the registry cannot hand back the Job's image.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := execCommand(ctx, filepath.Join(host.repo, "bin/kubecc"), "build", pkg)
		cmd.Env = append(os.Environ(), "KUBECC_REGISTRY="+host.vars["REGISTRY"]+"/kubecc-local", "KUBECC_REGISTRY_INSECURE=true", "KUBECC_BUILD_IN=local")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubecc build: %v", err)
		}
		local := strings.TrimSpace(string(out))
		_, localDigest, _ := strings.Cut(local, "@")
		_, jobDigest, _ := strings.Cut(digestRef, "@")
		if localDigest == "" || localDigest != jobDigest {
			t.Fatalf("local build %s, build Job %s: not the same image", local, digestRef)
		}
	})

	t.Run("3 installing it on a second peer starts no Job: the registry holds it", func(t *testing.T) {
		if pkg == "" {
			t.Skip("needs scenario 1")
		}
		host.withBuilderConfig(t, clusterBuildConfig(b))
		jobs := host.watchBuildJobs(t, host.ns)
		off := host.peerLogOffset(t)
		start := time.Now()
		host.install(t, pkg)
		t.Logf("install on the host peer: %s", time.Since(start).Round(time.Millisecond))
		if n := jobs.names(); len(n) != 0 {
			t.Fatalf("build Jobs %v for a package the registry holds", n)
		}
		if log := host.peerLogSince(t, off); !strings.Contains(log, "reused, nothing compiled") {
			t.Fatalf("no reuse in the peer log:\n%s", kubeccLines(log))
		}
	})

	t.Run("4 a package that does not compile fails fast with the compiler's error, nothing left", func(t *testing.T) {
		host.withBuilderConfig(t, clusterBuildConfig(b))
		jobs := host.watchBuildJobs(t, host.ns)
		off := host.peerLogOffset(t)
		bad := host.brokenPackage(t, fmt.Sprintf("cb%d_bad", run))
		out, err := host.run(context.Background(), "peer", "lifecycle", "chaincode", "install", bad)
		if err == nil {
			t.Fatalf("a package that does not compile installed:\n%s", out)
		}
		ended := time.Now()
		names := jobs.names()
		if len(names) != 1 {
			t.Fatalf("build Jobs %v, want one", names)
		}
		for _, started := range names {
			if d := ended.Sub(started); d > 30*time.Second {
				t.Errorf("install failed %s after the Job started, want within 30 s", d.Round(time.Millisecond))
			}
		}
		log := host.peerLogSince(t, off)
		if !strings.Contains(log, "undefinedOnPurpose") {
			t.Fatalf("the compiler's error is not in the peer log:\n%s", kubeccLines(log))
		}
		host.noBuildObjects(t, host.ns, 10*time.Second)
		if strings.Contains(log, "source artifact") && strings.Contains(log, "kept") {
			t.Errorf("source artifact kept:\n%s", findLine(log, "source artifact"))
		}
	})

	t.Run("5 an unpullable toolchain image fails the install within 15 s with the pull error", func(t *testing.T) {
		// The build hook finds the image missing in its registry and creates no Job; a
		// registry it cannot ask leaves it to the kubelet's pull error (unit-tested).
		cfg := clusterBuildConfig(b)
		cfg["buildImages"] = "{golang: " + b["REGISTRY_POD"] + "/toolchains/missing:0}"
		host.withBuilderConfig(t, cfg)
		jobs := host.watchBuildJobs(t, host.ns)
		off := host.peerLogOffset(t)
		pkg := host.goPackage(t, fmt.Sprintf("cb%d_pull", run))
		start := time.Now()
		out, err := host.run(context.Background(), "peer", "lifecycle", "chaincode", "install", pkg)
		ended := time.Now()
		if took := ended.Sub(start); took > 15*time.Second {
			t.Errorf("install failed after %s, want within 15 s", took.Round(time.Millisecond))
		}
		if err == nil {
			t.Fatalf("installed with a missing toolchain image:\n%s", out)
		}
		log := host.peerLogSince(t, off)
		if !regexp.MustCompile(`ErrImagePull|ImagePullBackOff|toolchains/missing:0 not found`).MatchString(log) {
			t.Fatalf("no pull error in the peer log:\n%s", kubeccLines(log))
		}
		for name, started := range jobs.names() {
			if d := ended.Sub(started); d > 15*time.Second {
				t.Errorf("install failed %s after Job %s started, want within 15 s", d.Round(time.Millisecond), name)
			}
		}
		host.noBuildObjects(t, host.ns, 10*time.Second)
	})

	t.Run("6 the peer stops during a build: the build Job goes with it", func(t *testing.T) {
		jobs := in.watchBuildJobs(t, in.ns)
		peer := in.peerPod(t, "", 60*time.Second)
		pkg := in.goPackage(t, fmt.Sprintf("cb%d_stop", run))
		go func() { _, _ = in.run(context.Background(), "peer", "lifecycle", "chaincode", "install", pkg) }()
		eventually(t, 60*time.Second, "a build Job", func() bool { return len(jobs.names()) > 0 })
		building := jobs.names()
		if err := in.kube.CoreV1().Pods(in.ns).Delete(context.Background(), peer.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		eventually(t, 30*time.Second, "the build Jobs of the deleted peer Pod to go", func() bool {
			for name := range building {
				if _, err := in.kube.BatchV1().Jobs(in.ns).Get(context.Background(), name, metav1.GetOptions{}); err == nil {
					return false
				}
			}
			return true
		})
		t.Logf("build Job gone %s after the peer Pod was deleted", time.Since(start).Round(time.Millisecond))
		// The new peer Pod finds the package installed but never built, and builds it
		// (its own Job); let that end before the next suite.
		in.peerPod(t, peer.Name, 90*time.Second)
		in.noBuildObjects(t, in.ns, 3*time.Minute)
	})

	t.Run("7 a registry that wants credentials: the hooks, the build Job and the kubelet each log in with their own", func(t *testing.T) {
		if b["REGISTRY_AUTH_POD"] == "" {
			t.Skip("no basic-auth registry endpoint on this harness: run e2e/up.sh")
		}
		reg := startAuthRegistry(t, b["REGISTRY_AUTH_POD"], host.vars["REGISTRY"], b["REGISTRY_AUTH_CONFIG"])
		resp, err := http.Get("http://" + reg.Addr + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous GET /v2/ at %s: %s, want 401", reg.Addr, resp.Status)
		}
		ctx := context.Background()
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kubecc-e2e-registry-auth"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: reg.DockerConfig}}
		if _, err := host.kube.CoreV1().Secrets(host.ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = host.kube.CoreV1().Secrets(host.ns).Delete(context.Background(), secret.Name, metav1.DeleteOptions{})
		})
		cfg := clusterBuildConfig(b)
		cfg["registry"] = reg.Addr + "/kubecc"
		cfg["insecureRegistries"] = "[" + b["REGISTRY_POD"] + ", " + reg.Addr + "]"
		cfg["imagePullSecrets"] = "[" + secret.Name + "]"
		label := fmt.Sprintf("cb%d_auth", run)
		pkg := host.goPackage(t, label)

		// Without the push Secret the Job has no credentials: it cannot read its source.
		host.withBuilderConfig(t, cfg)
		jobs := host.watchBuildJobs(t, host.ns)
		off := host.peerLogOffset(t)
		if out, err := host.run(ctx, "peer", "lifecycle", "chaincode", "install", pkg); err == nil {
			t.Fatalf("a build Job without the push Secret installed:\n%s", out)
		}
		if log := host.peerLogSince(t, off); !regexp.MustCompile(`UNAUTHORIZED|401 Unauthorized`).MatchString(log) {
			t.Fatalf("no refusal of the registry in the peer log:\n%s", kubeccLines(log))
		}
		host.noBuildObjects(t, host.ns, 10*time.Second)
		jobs.close()

		cfg["buildPushSecret"] = secret.Name
		host.withBuilderConfig(t, cfg)
		jobs = host.watchBuildJobs(t, host.ns)
		off = host.peerLogOffset(t)
		id := host.install(t, pkg)
		log := host.peerLogSince(t, off)
		ref := lastBuiltImage(log, build.RepoName(label))
		if !strings.HasPrefix(ref, reg.Addr+"/kubecc/") {
			t.Fatalf("built %q, want an image in %s:\n%s", ref, reg.Addr, kubeccLines(log))
		}
		if !strings.Contains(log, "kubecc: image on node") || strings.Contains(log, "not pre-pulled") {
			t.Fatalf("the kubelet did not pull %s with the pull Secret:\n%s", ref, kubeccLines(log))
		}
		specs := jobs.specs()
		if len(specs) != 1 {
			t.Fatalf("build Jobs %d, want one", len(specs))
		}
		assertCredentialsOnlyInTheSecret(t, specs[0], secret.Name, reg)
		if strings.Contains(log, reg.Password) || strings.Contains(log, base64.StdEncoding.EncodeToString([]byte(reg.User+":"+reg.Password))) {
			t.Fatal("the registry credentials are in the peer log")
		}
		name := fmt.Sprintf("cba%d", run)
		host.deploy(t, name, id, 1)
		if pod := host.runningPod(t, id, 60*time.Second); pod.Spec.Containers[0].Image != ref {
			t.Fatalf("chaincode runs %s, built %s", pod.Spec.Containers[0].Image, ref)
		}
		host.mustInvoke(t, name, "put", "k", "private")
		host.mustQuery(t, name, "private", "get", "k")
		host.noBuildObjects(t, host.ns, 10*time.Second)
	})
}

// assertCredentialsOnlyInTheSecret checks that the build Job gets the push credentials
// as a read-only mount of the Secret, and nowhere in its env, arguments or labels.
func assertCredentialsOnlyInTheSecret(t *testing.T, job *batchv1.Job, secret string, reg *authRegistry) {
	t.Helper()
	spec := job.Spec.Template.Spec
	mounted := false
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secret {
			for _, m := range spec.Containers[0].VolumeMounts {
				mounted = mounted || (m.Name == v.Name && m.ReadOnly)
			}
		}
	}
	if !mounted {
		t.Fatalf("the push Secret %s is not mounted read-only in the build Job: %+v", secret, spec.Volumes)
	}
	pulls := false
	for _, s := range spec.ImagePullSecrets {
		pulls = pulls || s.Name == secret
	}
	if !pulls {
		t.Fatalf("the build Job's pod has no pull Secret %s: %v", secret, spec.ImagePullSecrets)
	}
	var plain []string
	plain = append(plain, spec.Containers[0].Command...)
	plain = append(plain, spec.Containers[0].Args...)
	for _, e := range spec.Containers[0].Env {
		plain = append(plain, e.Value)
	}
	for k, v := range job.Labels {
		plain = append(plain, k, v)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	for _, s := range plain {
		if strings.Contains(s, reg.Password) || strings.Contains(s, auth) {
			t.Fatalf("the registry credentials are in the build Job's command, env or labels: %q", s)
		}
	}
}
