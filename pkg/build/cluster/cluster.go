// Package cluster runs builds as Kubernetes Jobs, so that a peer with no toolchain
// (the stock peer image) still turns source packages into images. The build hook
// pushes the package's source to the registry as an artifact; a Job in the
// language's toolchain image, with kubecc copied in from kubecc's own image, pulls it,
// runs the same pipeline as a local build and pushes the image; the hook follows the
// Job's pod, copies its log into the peer's, reads name@digest from its termination
// message, and deletes the Job and the artifact.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubecc/kubecc/pkg/build"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/image"
	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/launch"
	"github.com/kubecc/kubecc/pkg/names"
	"github.com/kubecc/kubecc/pkg/podspec"
)

// SourceCommand is kubecc's command in a build Job.
const SourceCommand = "build-source"

// Runner builds in a Job.
type Runner struct {
	Config   *config.Config
	Registry *image.Registry
	// Connect reaches the cluster when a build needs it (not for reused images).
	Connect func() (kube.Client, error)
	// Host is this machine's name: the peer's Pod, when the peer is one, owns the Job.
	Host string
	Log  io.Writer
}

func (r *Runner) toolchain(lang string) (string, error) {
	switch lang {
	case "golang":
		return r.Config.BuildImages.Golang, nil
	case "node":
		if r.Config.BuildImages.Node != "" {
			return r.Config.BuildImages.Node, nil
		}
		return "", errors.New("config key buildImages.node (env KUBECC_BUILD_IMAGE_NODE) is not set")
	}
	return "", fmt.Errorf("no build image for %s packages", lang)
}

// Run builds p in a Job and returns the image it pushed.
func (r *Runner) Run(ctx context.Context, p *build.Plan) (*build.Result, error) {
	start := time.Now()
	log := launch.NewNamedLog(r.Log, "kubecc: ")
	if r.Config.KubeccImage == "" {
		return nil, errors.New("config key kubeccImage (env KUBECC_IMAGE) is not set: build Jobs get kubecc from kubecc's image")
	}
	tool, err := r.toolchain(p.Language.Type())
	if err != nil {
		return nil, err
	}
	kc, err := r.Connect()
	if err != nil {
		return nil, err
	}
	// The source goes up while the Job starts: kubecc in the Job waits for it by
	// digest, and a pod takes longer to start than the push.
	src, err := r.startSourcePush(ctx, p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if src.wait() == nil {
			r.deleteSource(src.ref, log)
		}
	}()
	// The peer's Pod, the Job's owner, is looked up while the build image is; that
	// also opens the connection the Job is created on.
	owner := make(chan *metav1.OwnerReference, 1)
	go func() { owner <- launch.FindPeerPod(ctx, kc, r.Config, r.Host) }()
	img, err := r.buildImage(ctx, p.Language.Type(), tool, log)
	peer := <-owner
	if err != nil {
		return nil, err
	}
	spec := r.job(p, img, src.ref, peer)
	ns := r.Config.Namespace
	if _, err := kc.Jobs(ns).Create(ctx, spec, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create build job %s/%s: %w", ns, spec.Name, err)
	}
	defer deleteJob(kc, ns, spec.Name, log)
	log.Printf("build job %s/%s created, build image %s (%s)", ns, spec.Name, img.describe(), since(start))
	if err := src.wait(); err != nil {
		return nil, err
	}
	log.Printf("source pushed as %s (%s)", src.ref, since(start))
	ref, err := follow(ctx, kc, ns, spec.Name, log, r.reported(p))
	if err != nil {
		if ctx.Err() != nil {
			log.Printf("stopping: deleting build job %s", spec.Name)
			return nil, ctx.Err()
		}
		return nil, err
	}
	got, err := name.NewDigest(ref)
	if err != nil || got.Context().Name() != mustRepo(p.Repo) {
		return nil, fmt.Errorf("build job %s reported %q, want an image of %s by digest", spec.Name, ref, p.Repo)
	}
	log.Printf("built in the cluster: %s (%s)", ref, since(start))
	return &build.Result{Image: chaincode.ImageRef{Name: p.Repo, Digest: got.DigestStr()}}, nil
}

// job is the build Job of p, running img on the source artifact src.
func (r *Runner) job(p *build.Plan, img buildImage, src string, owner *metav1.OwnerReference) *batchv1.Job {
	return podspec.BuildJob{
		Name:           jobName(p),
		Image:          img.Ref,
		Kubecc:         KubeccPath,
		CopyKubeccFrom: img.CopyFrom,
		Arch:           img.Arch,
		Args:           []string{SourceCommand, "--source", src, "--expect", p.Tag, "--package-id", p.Input.PackageID},
		Env:            r.jobEnv(p),
		Labels:         map[string]string{podspec.LabelBuild: p.Hash[:16]},
		Owner:          owner,
	}.Job(r.Config)
}

func mustRepo(repo string) string {
	r, err := name.NewRepository(repo)
	if err != nil {
		return repo
	}
	return r.Name()
}

// jobEnv is what makes the Job's build the hook's: the registry, the settings that
// enter the content hash, and the operator's download settings. Nothing else of the
// peer's environment.
func (r *Runner) jobEnv(p *build.Plan) map[string]string {
	c := r.Config
	env := map[string]string{
		"KUBECC_REGISTRY":          c.Registry,
		"KUBECC_REGISTRY_INSECURE": strconv.FormatBool(c.RegistryInsecure),
		"KUBECC_GOARCH":            c.GOARCH,
		"KUBECC_BUILD_IN":          config.BuildLocal,
		"SOURCE_DATE_EPOCH":        strconv.FormatInt(p.Created.Unix(), 10),
		"CGO_ENABLED":              "0",
		"GOTOOLCHAIN":              "local",
	}
	if len(c.InsecureRegistries) > 0 {
		env["KUBECC_INSECURE_REGISTRIES"] = strings.Join(c.InsecureRegistries, ",")
	}
	if c.BaseImage != "" {
		env["KUBECC_BASE_IMAGE"] = c.BaseImage
	}
	if c.NodeBaseImage != "" {
		env["KUBECC_NODE_BASE_IMAGE"] = c.NodeBaseImage
	}
	for k, v := range c.BuildEnv {
		env[k] = v
	}
	return env
}

func jobName(p *build.Plan) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("kubecc-build-%s-%s-%s", names.Slug(p.Input.Metadata.Label, 28, "chaincode"), p.Hash[:8], hex.EncodeToString(b[:]))
}

// sourcePush is the source artifact on its way to the registry.
type sourcePush struct {
	ref  string // repository@digest
	done chan struct{}
	err  error
}

func (s *sourcePush) wait() error {
	<-s.done
	return s.err
}

// startSourcePush packs the package's source and pushes it in the background.
func (r *Runner) startSourcePush(ctx context.Context, p *build.Plan) (*sourcePush, error) {
	img, err := sourceImage(p.Input.SrcDir, p.Input.Metadata.Raw)
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("pack source: %w", err)
	}
	s := &sourcePush{ref: p.Repo + "@" + digest.String(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if _, err := r.Registry.Push(ctx, p.Repo+":src-"+p.Hash, img); err != nil {
			s.err = fmt.Errorf("push source: %w", err)
		}
	}()
	return s, nil
}

// deleteSource removes the source artifact; a registry that refuses deletes keeps it
// (it is small, and content-addressed: the next build of the package reuses the tag).
func (r *Runner) deleteSource(ref string, log *launch.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Registry.Delete(ctx, ref); err != nil {
		log.Printf("warning: source artifact %s kept: %v", ref, err)
	}
}

func deleteJob(kc kube.Client, ns, job string, log *launch.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := launch.Sweep(ctx, kc, ns, labels.Set{podspec.LabelManagedBy: podspec.ManagedBy, podspec.LabelInstance: job}.String()); err != nil {
		log.Printf("warning: delete build job %s: %v", job, err)
	}
}

// follow waits for the build's result, name@digest, copying the pod's log into the
// peer's as it comes. The result is kubecc's last line in the Job, taken as soon as it
// is printed once confirm accepts it: waiting for the kubelet to report the exit adds
// its next status round, up to a second. The termination message, read when the
// container has exited, says the same.
func follow(ctx context.Context, kc kube.Client, ns, job string, log *launch.Log, confirm func(context.Context, string) (string, bool)) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &jobLog{kc: kc, ns: ns, job: job, log: log, results: make(chan string), quit: make(chan struct{})}
	defer func() { cancel(); w.wait() }()
	sel := labels.Set{podspec.LabelInstance: job}.String()
	events := launch.Follow(ctx, kc, ns, sel, job, log)
	for {
		var ev launch.PodEvent
		var ok bool
		select {
		case line := <-w.results:
			if ref, ok := confirm(ctx, line); ok {
				return ref, nil
			}
			continue
		case ev, ok = <-events:
			if !ok {
				return "", ctx.Err()
			}
		}
		if ev.Deleted {
			return "", fmt.Errorf("build pod %s was deleted", ev.Pod.Name)
		}
		st := launch.Classify(ev.Pod, podspec.BuildContainerName)
		if st.State == launch.Started || st.State == launch.Exited {
			w.start(ctx, ev.Pod.Name)
		}
		switch st.State {
		case launch.Failed:
			return "", fmt.Errorf("build job %s: %w", job, st.Err)
		case launch.Exited:
			w.wait() // the compiler's lines first: the stream ends with the container
			var exit *launch.ExitError
			if errors.As(st.Err, &exit) && exit.Code == 0 {
				return strings.TrimSpace(st.Message), nil
			}
			return "", fmt.Errorf("build job %s failed (%w); its output is above in the peer log", job, st.Err)
		}
	}
}

// jobLog copies a build pod's log into the peer's and hands on the lines that may be
// the result.
type jobLog struct {
	kc      kube.Client
	ns, job string
	log     *launch.Log
	results chan string   // lines that look like name@digest
	quit    chan struct{} // closed when nobody reads results any more
	once    sync.Once
	started bool
	copying sync.WaitGroup
}

func (w *jobLog) start(ctx context.Context, pod string) {
	if w.started {
		return
	}
	w.started = true
	w.copying.Add(1)
	go func() {
		defer w.copying.Done()
		launch.StreamLogs(ctx, w.kc, w.ns, pod, podspec.BuildContainerName, w.log, func(line string) {
			w.log.Raw("build " + w.job + ": " + line)
			if digestLine.MatchString(line) {
				select {
				case w.results <- line:
				case <-w.quit:
				case <-ctx.Done():
				}
			}
		})
	}()
}

// wait stops handing on results and waits until the log is copied.
func (w *jobLog) wait() {
	w.once.Do(func() { close(w.quit) })
	w.copying.Wait()
}

// digestLine is what kubecc build-source prints last: name@digest.
var digestLine = regexp.MustCompile(`^\S+@sha256:[0-9a-f]{64}$`)

// reported accepts a result line naming the plan's image that the registry holds
// under the planned tag.
func (r *Runner) reported(p *build.Plan) func(context.Context, string) (string, bool) {
	return func(ctx context.Context, line string) (string, bool) {
		d, err := name.NewDigest(line)
		if err != nil || d.Context().Name() != mustRepo(p.Repo) {
			return "", false
		}
		desc, err := r.Registry.Head(ctx, p.Tag)
		if err != nil || desc == nil || desc.Digest.String() != d.DigestStr() {
			return "", false
		}
		return line, true
	}
}

func (b buildImage) describe() string {
	switch {
	case b.CopyFrom != "":
		return b.Ref + " with kubecc from " + b.CopyFrom
	case b.Pushed:
		return b.Ref + " (new)"
	}
	return b.Ref
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }
