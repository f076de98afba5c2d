package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubecc/kubecc/pkg/kube"
)

// Launcher runs one chaincode launch as a Pod.
type Launcher struct {
	Kube   kube.Client
	Params *Params
	// Log receives run's own lines and the chaincode's log.
	Log io.Writer

	start time.Time
	mu    sync.Mutex
}

// ExitError is the chaincode's own exit.
type ExitError struct {
	Code   int
	Reason string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("chaincode exited with code %d%s", e.Code, reasonSuffix(e.Reason))
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

func (l *Launcher) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = fmt.Fprintf(l.Log, "kubecc run: "+format+"\n", args...)
}

func (l *Launcher) elapsed() string {
	l.mu.Lock()
	start := l.start
	l.mu.Unlock()
	return time.Since(start).Round(time.Millisecond).String()
}

// Cleanup deletes every Pod, Job and Secret the selector matches.
func Cleanup(ctx context.Context, kc kube.Client, ns string, sel string) error {
	zero := int64(0)
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &bg}
	list := metav1.ListOptions{LabelSelector: sel}
	var errs []error
	if err := kc.Jobs(ns).DeleteCollection(ctx, opts, list); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete jobs %s: %w", sel, err))
	}
	if err := kc.Pods(ns).DeleteCollection(ctx, opts, list); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete pods %s: %w", sel, err))
	}
	if err := kc.Secrets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, list); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete secrets %s: %w", sel, err))
	}
	return errors.Join(errs...)
}

// Run launches the chaincode and returns when it ends: nil after ctx is cancelled
// (the peer asked run to stop) and everything was deleted, or after a serverless
// chaincode went idle; an *ExitError when the chaincode exited; another error when the
// launch failed.
func (l *Launcher) Run(ctx context.Context) error {
	l.start = time.Now()
	p := l.Params
	ns := p.Config.Namespace

	// What an earlier run of this peer and package left behind (the peer was killed,
	// or run was) would otherwise run on, connected to nothing.
	if err := Cleanup(ctx, l.Kube, ns, p.Selector().String()); err != nil {
		return err
	}

	name := p.NewName()
	if p.Serverless() {
		return l.runJobs(ctx, name)
	}
	secretName, err := l.startInstance(ctx, name)
	if err != nil {
		return err
	}
	err = l.watch(ctx, name)
	if ctx.Err() != nil {
		l.logf("stopping: deleting %s and its secret", name)
		err = nil
	}
	l.deleteAll(name, secretName)
	return err
}

// startInstance creates one instance of the chaincode: its Secret and its Pod or Job.
func (l *Launcher) startInstance(ctx context.Context, name string) (string, error) {
	p := l.Params
	ns := p.Config.Namespace
	secretName := ""
	if s := p.Secret(name); s != nil {
		if _, err := createRetrying(ctx, l, l.Kube.Secrets(ns), s, name, false); err != nil {
			return "", fmt.Errorf("create secret %s/%s: %w", ns, name, err)
		}
		secretName = name
	}
	owner, err := l.create(ctx, name, secretName)
	if err != nil {
		l.deleteAll(name, secretName)
		return "", err
	}
	l.logf("%s %s/%s created for %s, image %s (%s)", strings.ToLower(owner.Kind), ns, name, p.Run.ChaincodeID, p.Image.Ref(), l.elapsed())
	if secretName != "" {
		// The Secret goes when its owner goes, even if run is killed before it can clean up.
		go l.ownSecret(ctx, secretName, owner)
	}
	return secretName, nil
}

// instance is one Job of a serverless launch and the watch on its pod.
type instance struct {
	name, secret string
	stop         context.CancelFunc
	ended        chan error
}

func (l *Launcher) watchInstance(ctx context.Context, name, secret string) *instance {
	wctx, stop := context.WithCancel(ctx)
	in := &instance{name: name, secret: secret, stop: stop, ended: make(chan error, 1)}
	go func() { in.ended <- l.watch(wctx, name) }()
	return in
}

// create makes the Pod (resident) or Job (serverless) and returns it as an owner.
func (l *Launcher) create(ctx context.Context, name, secretName string) (metav1.OwnerReference, error) {
	p := l.Params
	ns := p.Config.Namespace
	var peerOwner []metav1.OwnerReference
	if owner := l.peerPodOwner(ctx); owner != nil {
		peerOwner = []metav1.OwnerReference{*owner}
	}
	if p.Serverless() {
		job := p.Job(name, secretName)
		job.OwnerReferences = peerOwner
		created, err := createRetrying(ctx, l, l.Kube.Jobs(ns), job, name, true)
		if err != nil {
			return metav1.OwnerReference{}, fmt.Errorf("create job %s/%s: %w", ns, name, err)
		}
		return metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: created.Name, UID: created.UID}, nil
	}
	pod := p.Pod(name, secretName)
	pod.OwnerReferences = peerOwner
	created, err := createRetrying(ctx, l, l.Kube.Pods(ns), pod, name, true)
	if err != nil {
		return metav1.OwnerReference{}, fmt.Errorf("create pod %s/%s: %w", ns, name, err)
	}
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: created.Name, UID: created.UID}, nil
}

func (l *Launcher) peerPodOwner(ctx context.Context) *metav1.OwnerReference {
	cfg := l.Params.Config
	podName := cfg.PeerPod
	if podName == "" && cfg.Kubeconfig == "" {
		podName, _ = os.Hostname()
	}
	if podName == "" {
		return nil
	}
	peer, err := l.Kube.Pods(cfg.Namespace).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return nil // the peer is not a Pod in this namespace
	}
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: peer.Name, UID: peer.UID}
}

func (l *Launcher) ownSecret(ctx context.Context, secret string, owner metav1.OwnerReference) {
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":%q,"kind":%q,"name":%q,"uid":%q}]}}`, owner.APIVersion, owner.Kind, owner.Name, owner.UID)
	_, err := l.Kube.Secrets(l.Params.Config.Namespace).Patch(ctx, secret, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && ctx.Err() == nil {
		l.logf("warning: could not make %s own its secret: %v", owner.Name, err)
	}
}

// deleteAll removes the launch's objects with a context of its own: it runs when the
// peer's SIGTERM has already cancelled ctx, and SIGKILL follows in 5 s.
func (l *Launcher) deleteAll(name, secretName string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	ns := l.Params.Config.Namespace
	zero := int64(0)
	bg := metav1.DeletePropagationBackground
	if l.Params.Serverless() {
		if err := l.Kube.Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
			l.logf("warning: delete job %s: %v", name, err)
		}
		// The job's pods directly too: waiting for the garbage collector is slower.
		sel := labels.Set{LabelInstance: name}.String()
		if err := l.Kube.Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: sel}); err != nil && !apierrors.IsNotFound(err) {
			l.logf("warning: delete pods of job %s: %v", name, err)
		}
	} else if err := l.Kube.Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
		l.logf("warning: delete pod %s: %v", name, err)
	}
	if secretName != "" {
		if err := l.Kube.Secrets(ns).Delete(ctx, secretName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			l.logf("warning: delete secret %s: %v", secretName, err)
		}
	}
}

// fatalWaiting are container waiting reasons that will not fix themselves: failing
// now beats letting the peer wait out its launch timeout.
var fatalWaiting = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
}

// watch follows the launch's pod (found by its instance label: a Job names its own
// pod) until its container ends, streaming its log once it runs.
func (l *Launcher) watch(ctx context.Context, name string) error {
	ns := l.Params.Config.Namespace
	pods := l.Kube.Pods(ns)
	rv := ""
	var scheduled, started bool
	var logs sync.WaitGroup
	defer logs.Wait()
	logCtx, stopLogs := context.WithCancel(ctx)
	defer stopLogs()
	timeout := time.NewTimer(l.Params.Config.LaunchTimeout.Duration)
	defer timeout.Stop()

	retry := newBackoff()
	for {
		w, err := pods.Watch(ctx, metav1.ListOptions{
			LabelSelector:   labels.Set{LabelInstance: name}.String(),
			ResourceVersion: rv,
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// An API server that is restarting or briefly unreachable must not take a
			// running chaincode down with it: keep trying (the launch timeout still
			// bounds a launch that has not started).
			rv = ""
			d := retry.next()
			l.logf("warning: watch pods of %s: %v; retrying in %s", name, err, d)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timeout.C:
				if !started {
					return fmt.Errorf("%s: container not started after %s (watch: %v)", name, l.Params.Config.LaunchTimeout.Duration, err)
				}
			case <-time.After(d):
			}
			continue
		}
		retry.reset()
		restart, err := func() (bool, error) {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return false, ctx.Err()
				case <-timeout.C:
					if !started {
						return false, fmt.Errorf("%s: container not started after %s", name, l.Params.Config.LaunchTimeout.Duration)
					}
				case ev, ok := <-w.ResultChan():
					if !ok {
						return true, nil
					}
					switch ev.Type {
					case watch.Error:
						// Most often an expired resource version: start over from now.
						rv = ""
						return true, nil
					case watch.Deleted:
						if p, ok := ev.Object.(*corev1.Pod); ok {
							return false, fmt.Errorf("pod %s was deleted", p.Name)
						}
						return false, fmt.Errorf("pod of %s was deleted", name)
					}
					p, ok := ev.Object.(*corev1.Pod)
					if !ok {
						continue
					}
					rv = p.ResourceVersion
					if !scheduled && podScheduled(p) {
						scheduled = true
						l.logf("pod scheduled on %s (%s)", p.Spec.NodeName, l.elapsed())
					}
					if reason, msg := unschedulable(p); reason != "" {
						return false, fmt.Errorf("pod %s cannot be scheduled: %s: %s", p.Name, reason, msg)
					}
					st := containerStatus(p)
					if st == nil {
						continue
					}
					if wt := st.State.Waiting; wt != nil && fatalWaiting[wt.Reason] {
						return false, fmt.Errorf("pod %s: %s: %s", p.Name, wt.Reason, wt.Message)
					}
					if !started && (st.State.Running != nil || st.State.Terminated != nil) {
						started = true
						l.logf("container started (%s)", l.elapsed())
						logs.Add(1)
						go func() {
							defer logs.Done()
							l.streamLogs(logCtx, p.Namespace, p.Name)
						}()
					}
					if t := st.State.Terminated; t != nil {
						waitTimeout(&logs, 2*time.Second) // the log ends with the container; print all of it first
						l.logf("container exited with code %d after %s", t.ExitCode, l.elapsed())
						return false, &ExitError{Code: int(t.ExitCode), Reason: strings.TrimSpace(t.Reason + " " + t.Message)}
					}
					if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
						return false, fmt.Errorf("pod %s: phase %s: %s", p.Name, p.Status.Phase, p.Status.Message)
					}
				}
			}
		}()
		if !restart {
			return err
		}
	}
}

func podScheduled(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func unschedulable(p *corev1.Pod) (string, string) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Reason, c.Message
		}
	}
	return "", ""
}

func containerStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == ContainerName {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// streamLogs copies the chaincode's log to run's stderr, which the peer logs. A stream
// that breaks (the API server restarted) is resumed from the last line's timestamp, so
// a chaincode that outlives the break keeps its log in the peer's.
func (l *Launcher) streamLogs(ctx context.Context, ns, name string) {
	var last time.Time
	retry := newBackoff()
	for {
		opts := &corev1.PodLogOptions{Container: ContainerName, Follow: true, Timestamps: true}
		if !last.IsZero() {
			opts.SinceTime = &metav1.Time{Time: last} // whole seconds: lines up to last are skipped below
		}
		err := l.copyLog(ctx, ns, name, opts, &last)
		if err == nil || ctx.Err() != nil {
			return
		}
		d := retry.next()
		l.logf("warning: chaincode log of %s: %v; resuming in %s", name, err, d)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// copyLog copies one log stream, skipping lines not after last and advancing it. It
// returns nil when the log ended (the container exited) and an error when the stream
// could not open or broke.
func (l *Launcher) copyLog(ctx context.Context, ns, name string, opts *corev1.PodLogOptions, last *time.Time) error {
	stream, err := l.Kube.PodLogs(ctx, ns, name, opts)
	if err != nil {
		return err
	}
	defer func() { _ = stream.Close() }()
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if ts, rest, ok := strings.Cut(line, " "); ok {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				if !t.After(*last) {
					continue // printed before the stream broke
				}
				*last, line = t, rest
			}
		}
		l.mu.Lock()
		_, _ = fmt.Fprintf(l.Log, "chaincode %s: %s\n", name, line)
		l.mu.Unlock()
	}
	return sc.Err()
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// backoff doubles a retry delay from 100 ms up to 5 s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, 100*time.Millisecond), 5*time.Second)
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

// createPatience is how long a create waits for an unreachable or overloaded API
// server: less than the peer's default execute timeout (30 s), so a call that waits in
// the relay for a new chaincode can still be served once the API server is back.
const createPatience = 20 * time.Second

// createRetrying creates obj, retrying while the API server does not answer or says
// it is overloaded. If a lost answer hid that an earlier try worked, the object is
// fetched instead when fetch is set (Secrets are not: the launcher's Role may create
// Secrets but not read them), else obj is returned as sent.
func createRetrying[T runtime.Object, L runtime.Object](ctx context.Context, l *Launcher, r kube.Resource[T, L], obj T, name string, fetch bool) (T, error) {
	retry := newBackoff()
	deadline := time.Now().Add(createPatience)
	retried := false
	for {
		created, err := r.Create(ctx, obj, metav1.CreateOptions{})
		if err == nil {
			return created, nil
		}
		if retried && apierrors.IsAlreadyExists(err) {
			if !fetch {
				return obj, nil
			}
			return r.Get(ctx, name, metav1.GetOptions{})
		}
		if !transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return created, err
		}
		retried = true
		d := retry.next()
		l.logf("warning: create %s: %v; retrying in %s", name, err, d)
		select {
		case <-ctx.Done():
			return created, ctx.Err()
		case <-time.After(d):
		}
	}
}

// transient reports whether a request may work if tried again: the API server did not
// answer, or answered 429 or 5xx.
func transient(err error) bool {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		code := st.Status().Code
		return code == 429 || code >= 500
	}
	return true
}
