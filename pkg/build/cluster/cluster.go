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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
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
	// A kubelet reports a pull error of a Job's second container only on its next
	// sync, seconds later; an image the registry says it does not have fails now.
	for key, ref := range map[string]string{"kubeccImage": r.Config.KubeccImage, "buildImages." + p.Language.Type(): tool} {
		if desc, err := r.Registry.Head(ctx, ref); err == nil && desc == nil {
			return nil, fmt.Errorf("config key %s: image %s not found in its registry", key, ref)
		}
	}
	kc, err := r.Connect()
	if err != nil {
		return nil, err
	}
	src, err := r.pushSource(ctx, p)
	if err != nil {
		return nil, err
	}
	defer r.deleteSource(src, log)
	log.Printf("source pushed as %s (%s)", src, since(start))
	job := podspec.BuildJob{
		Name:      jobName(p),
		Toolchain: tool,
		Args:      []string{SourceCommand, "--source", src, "--expect", p.Tag, "--package-id", p.Input.PackageID},
		Env:       r.jobEnv(p),
		Labels:    map[string]string{podspec.LabelBuild: p.Hash[:16]},
		Owner:     launch.FindPeerPod(ctx, kc, r.Config, r.Host),
	}.Job(r.Config)
	ns := r.Config.Namespace
	if _, err := kc.Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create build job %s/%s: %w", ns, job.Name, err)
	}
	defer deleteJob(kc, ns, job.Name, log)
	log.Printf("build job %s/%s created, image %s (%s)", ns, job.Name, tool, since(start))
	ref, err := follow(ctx, kc, ns, job.Name, log)
	if err != nil {
		if ctx.Err() != nil {
			log.Printf("stopping: deleting build job %s", job.Name)
			return nil, ctx.Err()
		}
		return nil, err
	}
	got, err := name.NewDigest(ref)
	if err != nil || got.Context().Name() != mustRepo(p.Repo) {
		return nil, fmt.Errorf("build job %s reported %q, want an image of %s by digest", job.Name, ref, p.Repo)
	}
	log.Printf("built in the cluster: %s (%s)", ref, since(start))
	return &build.Result{Image: chaincode.ImageRef{Name: p.Repo, Digest: got.DigestStr()}}, nil
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

func (r *Runner) pushSource(ctx context.Context, p *build.Plan) (string, error) {
	img, err := sourceImage(p.Input.SrcDir, p.Input.Metadata.Raw)
	if err != nil {
		return "", err
	}
	tag := p.Repo + ":src-" + p.Hash
	digest, err := r.Registry.Push(ctx, tag, img)
	if err != nil {
		return "", fmt.Errorf("push source: %w", err)
	}
	return p.Repo + "@" + digest.String(), nil
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

// follow waits for the build pod to end and returns its termination message
// (name@digest). Its log goes to the peer's as it comes.
func follow(ctx context.Context, kc kube.Client, ns, job string, log *launch.Log) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var logs sync.WaitGroup
	defer logs.Wait()
	started := false
	sel := labels.Set{podspec.LabelInstance: job}.String()
	for ev := range launch.Follow(ctx, kc, ns, sel, job, log) {
		if ev.Deleted {
			return "", fmt.Errorf("build pod %s was deleted", ev.Pod.Name)
		}
		st := launch.Classify(ev.Pod, podspec.BuildContainerName)
		if !started && (st.State == launch.Started || st.State == launch.Exited) {
			started = true
			pod := ev.Pod.Name
			logs.Add(1)
			go func() {
				defer logs.Done()
				launch.StreamLogs(ctx, kc, ns, pod, podspec.BuildContainerName, log, func(line string) { log.Raw("build " + job + ": " + line) })
			}()
		}
		switch st.State {
		case launch.Failed:
			return "", fmt.Errorf("build job %s: %w", job, st.Err)
		case launch.Exited:
			logs.Wait() // the compiler's lines first
			var exit *launch.ExitError
			if errors.As(st.Err, &exit) && exit.Code == 0 {
				return strings.TrimSpace(st.Message), nil
			}
			return "", fmt.Errorf("build job %s failed (%w); its output is above in the peer log", job, st.Err)
		}
	}
	return "", ctx.Err()
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }
