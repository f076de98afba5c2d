package cluster

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubecc/kubecc/pkg/build"
	"github.com/kubecc/kubecc/pkg/build/golang"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/image"
	"github.com/kubecc/kubecc/pkg/image/imagetest"
	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/kube/clientset"
	"github.com/kubecc/kubecc/pkg/kube/kubetest"
	"github.com/kubecc/kubecc/pkg/podspec"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type fixture struct {
	cfg  *config.Config
	reg  *image.Registry
	plan *build.Plan
	kc   *fake.Clientset
	log  *syncBuf
}

func newFixture(t *testing.T, env map[string]string) *fixture {
	t.Helper()
	host := imagetest.Loopback(t)
	vars := map[string]string{"KUBECC_REGISTRY": host + "/kubecc", "KUBECC_REGISTRY_INSECURE": "true", "KUBECC_NAMESPACE": "cc",
		"KUBECC_IMAGE": host + "/kubecc-image:v1", "KUBECC_BUILD_IMAGE_GOLANG": host + "/toolchains/go:1"}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(t.TempDir(), func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for name, data := range map[string]string{"src/go.mod": "module example.com/cc\n\ngo 1.22\n", "src/main.go": "package main\n\nfunc main() {}\n", "src/run.sh": "#!/bin/sh\n", "src/empty/": ""} {
		p := filepath.Join(src, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if strings.HasSuffix(name, "/") {
			continue
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	md, _ := chaincode.ParseMetadata("metadata.json", []byte(`{"type":"golang","path":"example.com/cc","label":"my_cc"}`))
	reg := &image.Registry{Insecure: cfg.Insecure}
	pushTestImage(t, reg, vars["KUBECC_BUILD_IMAGE_GOLANG"], 2, &v1.Config{User: "10001", Env: []string{"PATH=/usr/local/go/bin:/usr/bin"}})
	if strings.HasPrefix(vars["KUBECC_IMAGE"], host+"/") {
		pushTestImage(t, reg, vars["KUBECC_IMAGE"], 1, nil)
	}
	repo := host + "/kubecc/my-cc"
	hash := strings.Repeat("ab", 32)
	plan := &build.Plan{Input: build.Input{SrcDir: src, Metadata: md, PackageID: "my_cc:1"}, Language: golang.New(cfg, reg, nil, nil),
		Hash: hash, Repo: repo, Tag: repo + ":" + hash, Created: time.Unix(0, 0).UTC()}
	return &fixture{cfg: cfg, reg: reg, plan: plan, kc: kubetest.NewFake(), log: &syncBuf{}}
}

// pushTestImage pushes an image of random layers, with cfg as its configuration.
func pushTestImage(t *testing.T, reg *image.Registry, ref string, layers int64, cfg *v1.Config) v1.Image {
	t.Helper()
	img, err := random.Image(256, layers)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		if img, err = mutate.Config(img, *cfg); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push(context.Background(), ref, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func (f *fixture) runner() *Runner {
	return &Runner{Config: f.cfg, Registry: f.reg, Connect: func() (kube.Client, error) { return clientset.Wrap(f.kc), nil }, Log: f.log}
}

// playJob keeps giving each build Job's pod the status until stop: the fake has no
// Job controller and delivers only events after a watch opens.
func (f *fixture) playJob(status func(job string) corev1.PodStatus) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			jobs, _ := f.kc.BatchV1().Jobs("cc").List(ctx, metav1.ListOptions{})
			for _, j := range jobs.Items {
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-x", Namespace: "cc", Labels: j.Spec.Template.Labels}}
				_, _ = f.kc.CoreV1().Pods("cc").Create(ctx, pod, metav1.CreateOptions{})
				pod.Status = status(j.Name)
				_, _ = f.kc.CoreV1().Pods("cc").UpdateStatus(ctx, pod, metav1.UpdateOptions{})
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func terminated(code int32, msg string) corev1.PodStatus {
	return corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.BuildContainerName,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: msg}}}}}
}

func (f *fixture) leftovers(t *testing.T) int {
	jobs, _ := f.kc.BatchV1().Jobs("cc").List(context.Background(), metav1.ListOptions{})
	pods, _ := f.kc.CoreV1().Pods("cc").List(context.Background(), metav1.ListOptions{})
	return len(jobs.Items) + len(pods.Items)
}

func TestRunnerTakesTheImageTheJobReportsAndCleansUp(t *testing.T) {
	f := newFixture(t, nil)
	digest := "sha256:" + strings.Repeat("12", 32)
	var job podspecJob
	stop := f.playJob(func(name string) corev1.PodStatus {
		job.set(f, name)
		return terminated(0, f.plan.Repo+"@"+digest+"\n")
	})
	res, err := f.runner().Run(context.Background(), f.plan)
	stop()
	if err != nil {
		t.Fatalf("%v\n%s", err, f.log)
	}
	if res.Image.Name != f.plan.Repo || res.Image.Digest != digest {
		t.Fatalf("result %+v", res.Image)
	}
	if n := f.leftovers(t); n != 0 {
		t.Fatalf("%d jobs and pods left", n)
	}
	// The Job ran kubecc's build-source on the source artifact, which is gone now.
	args := job.get().Spec.Template.Spec.Containers[0].Command
	if len(args) < 4 || args[1] != SourceCommand || args[2] != "--source" || !strings.Contains(args[3], "@sha256:") {
		t.Fatalf("job command %v", args)
	}
	if desc, err := f.reg.Head(context.Background(), f.plan.Repo+":src-"+f.plan.Hash); err != nil || desc == nil {
		// The tag may stay; its manifest must not.
		if _, err := f.reg.Head(context.Background(), args[3]); err == nil {
			t.Fatalf("source artifact %s was not deleted", args[3])
		}
	}
}

// podspecJob remembers the first build Job the fake saw.
type podspecJob struct {
	mu  sync.Mutex
	job *jobT
}

type jobT = batchv1.Job

func (p *podspecJob) set(f *fixture, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.job == nil {
		if j, err := f.kc.BatchV1().Jobs("cc").Get(context.Background(), name, metav1.GetOptions{}); err == nil {
			p.job = j
		}
	}
}

func (p *podspecJob) get() *jobT {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.job
}

func TestRunnerFailsFastAndCleansUp(t *testing.T) {
	for name, tc := range map[string]struct {
		status corev1.PodStatus
		want   string
	}{
		"compile error": {terminated(1, ""), "failed"},
		"build image not pullable": {corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.BuildContainerName,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}}, "ImagePullBackOff"},
		"out of memory":    {terminated(137, ""), "137"},
		"deadline":         {corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DeadlineExceeded", Message: "Pod was active on the node longer than the specified deadline"}, "deadline"},
		"wrong repository": {terminated(0, "elsewhere/cc@sha256:"+strings.Repeat("12", 32)), "reported"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			stop := f.playJob(func(string) corev1.PodStatus { return tc.status })
			_, err := f.runner().Run(context.Background(), f.plan)
			stop()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q\n%s", err, tc.want, f.log)
			}
			if n := f.leftovers(t); n != 0 {
				t.Fatalf("%d jobs and pods left", n)
			}
		})
	}
}

func TestRunnerStoppedDeletesTheJob(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	stop := f.playJob(func(string) corev1.PodStatus {
		cancel() // the peer gave up (SIGTERM) while the build runs
		return corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.BuildContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	})
	_, err := f.runner().Run(ctx, f.plan)
	stop()
	if err == nil {
		t.Fatal("a stopped build succeeded")
	}
	if n := f.leftovers(t); n != 0 {
		t.Fatalf("%d jobs and pods left", n)
	}
}

func TestRunnerNeedsTheKubeccImage(t *testing.T) {
	f := newFixture(t, map[string]string{"KUBECC_IMAGE": ""})
	_, err := f.runner().Run(context.Background(), f.plan)
	if err == nil || !strings.Contains(err.Error(), "kubeccImage") || !strings.Contains(err.Error(), "KUBECC_IMAGE") {
		t.Fatalf("error %v", err)
	}
}

// The Job unpacks exactly the tree the hook hashed.
func TestSourceArtifactRoundTripKeepsTheContentHash(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	push, err := f.runner().startSourcePush(ctx, f.plan)
	if err != nil {
		t.Fatal(err)
	}
	if err := push.wait(); err != nil {
		t.Fatal(err)
	}
	ref := push.ref
	dir := t.TempDir()
	md, code, err := PullSource(ctx, f.reg, ref, dir, chaincode.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(md.Raw, f.plan.Input.Metadata.Raw) {
		t.Fatalf("metadata %q", md.Raw)
	}
	want, err := chaincode.ContentHash(f.plan.Input.Metadata, f.plan.Input.SrcDir, chaincode.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	got, err := chaincode.ContentHash(md, code, chaincode.DefaultLimits())
	if err != nil || got != want {
		t.Fatalf("content hash %s after the round trip, %s before (%v)", got, want, err)
	}
}

// A toolchain image its registry does not have fails before any Job is created.
func TestRunnerRefusesAMissingToolchainAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	f.cfg.BuildImages.Golang = strings.TrimSuffix(f.cfg.Registry, "/kubecc") + "/toolchains/missing:0"
	_, err := f.runner().Run(context.Background(), f.plan)
	if err == nil || !strings.Contains(err.Error(), "buildImages.golang") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("error %v", err)
	}
	if jobs, _ := f.kc.BatchV1().Jobs("cc").List(context.Background(), metav1.ListOptions{}); len(jobs.Items) != 0 {
		t.Fatalf("a Job was created: %v", jobs.Items)
	}
}

func running() corev1.PodStatus {
	return corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.BuildContainerName,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
}

// The Job runs one container: the toolchain with kubecc's layer on top, pushed once.
func TestRunnerLayersKubeccOntoTheToolchain(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	var built []string
	for i := range 3 {
		if i == 2 { // pinned by digest, as deployments should: the same image
			for _, ref := range []*string{&f.cfg.BuildImages.Golang, &f.cfg.KubeccImage} {
				desc, err := f.reg.Head(ctx, *ref)
				if err != nil || desc == nil {
					t.Fatal(err)
				}
				*ref = refAt(*ref, desc.Digest)
			}
		}
		var job podspecJob
		stop := f.playJob(func(name string) corev1.PodStatus {
			job.set(f, name)
			return terminated(0, f.plan.Repo+"@sha256:"+strings.Repeat("12", 32))
		})
		if _, err := f.runner().Run(ctx, f.plan); err != nil {
			stop()
			t.Fatalf("%v\n%s", err, f.log)
		}
		stop()
		spec := job.get().Spec.Template.Spec
		c := spec.Containers[0]
		if len(spec.InitContainers) != 0 || c.Command[0] != KubeccPath || spec.NodeSelector[corev1.LabelArchStable] != runtime.GOARCH {
			t.Fatalf("job: init %v, command %v, node selector %v", spec.InitContainers, c.Command, spec.NodeSelector)
		}
		built = append(built, c.Image)
	}
	if built[0] != built[1] || built[1] != built[2] || !strings.HasPrefix(built[0], f.cfg.Registry+"/"+BuildImagesRepo+"@sha256:") {
		t.Fatalf("build images %v", built)
	}
	if n := strings.Count(f.log.String(), "(new)"); n != 1 {
		t.Fatalf("build image pushed %d times, want once:\n%s", n, f.log)
	}
	img, err := f.reg.Image(ctx, built[0], v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	tool, _ := f.reg.Image(ctx, f.cfg.BuildImages.Golang, v1.Platform{OS: "linux", Architecture: "amd64"})
	self, _ := f.reg.Image(ctx, f.cfg.KubeccImage, v1.Platform{OS: "linux", Architecture: "amd64"})
	got, want := imagetest.LayerDigests(t, img), append(imagetest.LayerDigests(t, tool), imagetest.LayerDigests(t, self)...)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("layers %v, want the toolchain's then kubecc's %v", got, want)
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.Config.User != "10001" || len(cf.Config.Env) != 1 || !strings.HasPrefix(cf.Config.Env[0], "PATH=/usr/local/go/bin") {
		t.Fatalf("config %+v (%v): the toolchain's user and PATH must stay", cf.Config, err)
	}
}

// A kubecc image the hook cannot read (it is only reachable from the nodes, say):
// the Job copies kubecc in with an init container instead.
func TestRunnerFallsBackToAnInitContainer(t *testing.T) {
	f := newFixture(t, map[string]string{"KUBECC_IMAGE": "127.0.0.1:1/kubecc:v1"})
	var job podspecJob
	stop := f.playJob(func(name string) corev1.PodStatus {
		job.set(f, name)
		return terminated(0, f.plan.Repo+"@sha256:"+strings.Repeat("12", 32))
	})
	_, err := f.runner().Run(context.Background(), f.plan)
	stop()
	if err != nil {
		t.Fatalf("%v\n%s", err, f.log)
	}
	spec := job.get().Spec.Template.Spec
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].Image != "127.0.0.1:1/kubecc:v1" || spec.Containers[0].Image != f.cfg.BuildImages.Golang {
		t.Fatalf("init %v, image %s", spec.InitContainers, spec.Containers[0].Image)
	}
	if !strings.Contains(f.log.String(), "warning: build image") {
		t.Fatalf("no warning:\n%s", f.log)
	}
}

// logClient serves text as every container's log, kept open until the caller stops.
type logClient struct {
	kube.Client
	text string
}

func (c logClient) PodLogs(ctx context.Context, _, _ string, _ *corev1.PodLogOptions) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, c.text)
		<-ctx.Done()
		_ = pw.Close()
	}()
	return pr, nil
}

// The result is taken from kubecc's last line as soon as it is printed, once the
// registry holds it under the planned tag: the pod here never reports an exit. A line
// of the same form that the registry does not confirm is passed over.
func TestRunnerTakesTheResultFromTheLog(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	img := pushTestImage(t, f.reg, f.plan.Tag, 1, nil)
	d, _ := img.Digest()
	real := f.plan.Repo + "@" + d.String()
	forged := f.plan.Repo + "@sha256:" + strings.Repeat("ef", 32)
	r := f.runner()
	r.Connect = func() (kube.Client, error) {
		return logClient{Client: clientset.Wrap(f.kc), text: "compiling\n" + forged + "\n" + real + "\n"}, nil
	}
	stop := f.playJob(func(string) corev1.PodStatus { return running() })
	res, err := r.Run(ctx, f.plan)
	stop()
	if err != nil {
		t.Fatalf("%v\n%s", err, f.log)
	}
	if res.Image.Ref() != real {
		t.Fatalf("result %s, want %s", res.Image.Ref(), real)
	}
	if !strings.Contains(f.log.String(), "compiling") {
		t.Fatalf("the Job's log is not in the peer's:\n%s", f.log)
	}
	if n := f.leftovers(t); n != 0 {
		t.Fatalf("%d jobs and pods left", n)
	}
}

// The Job may ask for its source before the hook's push ends: it waits for it.
func TestPullSourceWaitsForTheHooksPush(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	img, err := sourceImage(f.plan.Input.SrcDir, f.plan.Input.Metadata.Raw)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ref := f.plan.Repo + "@" + d.String()
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = f.reg.Push(ctx, f.plan.Repo+":src-late", img)
	}()
	if _, _, err := PullSource(ctx, f.reg, ref, t.TempDir(), chaincode.DefaultLimits()); err != nil {
		t.Fatalf("source pushed 300 ms late: %v", err)
	}
	if _, err := awaitSource(ctx, f.reg, f.plan.Repo+"@sha256:"+strings.Repeat("0", 64), 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "not in the registry after 200ms") {
		t.Fatalf("a source that never comes: %v", err)
	}
}
