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
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// Launcher runs one chaincode launch as a Pod.
type Launcher struct {
	Kube   kubernetes.Interface
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
	return time.Since(l.start).Round(time.Millisecond).String()
}

// Cleanup deletes every Pod, Job and Secret the selector matches.
func Cleanup(ctx context.Context, kube kubernetes.Interface, ns string, sel string) error {
	zero := int64(0)
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &bg}
	list := metav1.ListOptions{LabelSelector: sel}
	var errs []error
	if err := kube.BatchV1().Jobs(ns).DeleteCollection(ctx, opts, list); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete jobs %s: %w", sel, err))
	}
	if err := kube.CoreV1().Pods(ns).DeleteCollection(ctx, opts, list); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete pods %s: %w", sel, err))
	}
	if err := kube.CoreV1().Secrets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, list); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete secrets %s: %w", sel, err))
	}
	return errors.Join(errs...)
}

// Run launches the chaincode and returns when it ends: nil after ctx is cancelled
// (the peer asked run to stop) and everything was deleted, an *ExitError when the
// chaincode exited, or another error when the launch failed.
func (l *Launcher) Run(ctx context.Context) error {
	l.start = time.Now()
	p := l.Params
	ns := p.Config.Namespace
	sel := p.Selector().String()

	// What an earlier run of this peer and package left behind (the peer was killed,
	// or run was) would otherwise run on, connected to nothing.
	if err := Cleanup(ctx, l.Kube, ns, sel); err != nil {
		return err
	}

	name := p.NewName()
	secretName := ""
	if s := p.Secret(name); s != nil {
		if _, err := l.Kube.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create secret %s/%s: %w", ns, name, err)
		}
		secretName = name
	}
	pod := p.Pod(name, secretName)
	if owner := l.peerPodOwner(ctx); owner != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	created, err := l.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		l.deleteAll(name, secretName)
		return fmt.Errorf("create pod %s/%s: %w", ns, name, err)
	}
	l.logf("pod %s/%s created for %s, image %s (%s)", ns, name, p.Run.ChaincodeID, p.Image.Ref(), l.elapsed())
	if secretName != "" {
		// The Secret goes when its Pod goes, even if run is killed before it can clean up.
		go l.ownSecret(ctx, created)
	}

	err = l.watch(ctx, created)
	if ctx.Err() != nil {
		l.logf("stopping: deleting pod %s and its secret", name)
		l.deleteAll(name, secretName)
		return nil
	}
	l.deleteAll(name, secretName)
	return err
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
	peer, err := l.Kube.CoreV1().Pods(cfg.Namespace).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return nil // the peer is not a Pod in this namespace
	}
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: peer.Name, UID: peer.UID}
}

func (l *Launcher) ownSecret(ctx context.Context, owner *corev1.Pod) {
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":%q,"uid":%q}]}}`, owner.Name, owner.UID)
	_, err := l.Kube.CoreV1().Secrets(owner.Namespace).Patch(ctx, owner.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && ctx.Err() == nil {
		l.logf("warning: could not make pod %s own its secret: %v", owner.Name, err)
	}
}

// deleteAll removes the launch's objects with a context of its own: it runs when the
// peer's SIGTERM has already cancelled ctx, and SIGKILL follows in 5 s.
func (l *Launcher) deleteAll(name, secretName string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	ns := l.Params.Config.Namespace
	zero := int64(0)
	if err := l.Kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
		l.logf("warning: delete pod %s: %v", name, err)
	}
	if secretName != "" {
		if err := l.Kube.CoreV1().Secrets(ns).Delete(ctx, secretName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
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

// watch follows the pod until its container ends, streaming its log once it runs.
func (l *Launcher) watch(ctx context.Context, pod *corev1.Pod) error {
	pods := l.Kube.CoreV1().Pods(pod.Namespace)
	rv := pod.ResourceVersion
	var scheduled, started bool
	var logs sync.WaitGroup
	defer logs.Wait()
	logCtx, stopLogs := context.WithCancel(ctx)
	defer stopLogs()
	timeout := time.NewTimer(l.Params.Config.LaunchTimeout.Duration)
	defer timeout.Stop()

	for {
		w, err := pods.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", pod.Name).String(),
			ResourceVersion: rv,
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("watch pod %s: %w", pod.Name, err)
		}
		restart, err := func() (bool, error) {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return false, ctx.Err()
				case <-timeout.C:
					if !started {
						return false, fmt.Errorf("pod %s: container not started after %s", pod.Name, l.Params.Config.LaunchTimeout.Duration)
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
						return false, fmt.Errorf("pod %s was deleted", pod.Name)
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

// streamLogs copies the chaincode's log to run's stderr, which the peer logs.
func (l *Launcher) streamLogs(ctx context.Context, ns, name string) {
	req := l.Kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Container: ContainerName, Follow: true})
	stream, err := req.Stream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.logf("warning: chaincode log of %s: %v", name, err)
		}
		return
	}
	defer func() { _ = stream.Close() }()
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		_, _ = fmt.Fprintf(l.Log, "chaincode %s: %s\n", name, sc.Text())
		l.mu.Unlock()
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
