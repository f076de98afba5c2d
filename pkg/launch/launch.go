// Package launch runs one instance of a chaincode on Kubernetes for the run hook:
// it creates the instance's Secret and Pod (or Job), follows its pod until the
// container ends, copies its log into the peer's, and deletes what it created.
// What the objects look like is podspec's business; the serverless loop that starts
// and stops instances on demand is in serverless.
package launch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/podspec"
)

// Launcher starts and follows the instances of one launch.
type Launcher struct {
	Kube   kube.Client
	Params *podspec.Params
	Log    *Log
	// PeerPod is the peer's own Pod, owner of every instance (nil: the peer is no Pod
	// in this namespace).
	PeerPod *metav1.OwnerReference
}

// Instance is one created chaincode: its Pod or Job, and its Secret.
type Instance struct {
	Name   string
	Secret string // "" with TLS off
	job    bool
}

// FindPeerPod looks up the peer's Pod (config peerPod, or the host name when
// in-cluster) as the owner of chaincode objects: when the peer Pod goes, the garbage
// collector removes its chaincode even if no run is left to do it.
func FindPeerPod(ctx context.Context, kc kube.Client, cfg *config.Config, host string) *metav1.OwnerReference {
	name := cfg.PeerPod
	if name == "" && cfg.Kubeconfig == "" {
		name = host
	}
	if name == "" {
		return nil
	}
	peer, err := kc.Pods(cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil // the peer is not a Pod in this namespace
	}
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: peer.Name, UID: peer.UID}
}

// Start creates one instance: its Secret, then its Pod (resident) or Job (serverless).
func (l *Launcher) Start(ctx context.Context, name string) (*Instance, error) {
	p := l.Params
	ns := p.Config.Namespace
	in := &Instance{Name: name, job: p.Mode.Serverless()}
	if s := p.Secret(name); s != nil {
		if _, err := createRetrying(ctx, l.Log, l.Kube.Secrets(ns), s, name, false); err != nil {
			return nil, fmt.Errorf("create secret %s/%s: %w", ns, name, err)
		}
		in.Secret = name
	}
	owner, err := l.create(ctx, in)
	if err != nil {
		l.Delete(ctx, in)
		return nil, err
	}
	l.Log.Printf("%s %s/%s created for %s, image %s (%s)", strings.ToLower(owner.Kind), ns, name, p.ChaincodeID, p.Image.Ref(), l.Log.Elapsed())
	if in.Secret != "" {
		// The Secret goes when its owner goes, even if run is killed before it can
		// clean up. Off the critical path: the pod does not wait for it.
		go l.ownSecret(ctx, in.Secret, owner)
	}
	return in, nil
}

func (l *Launcher) create(ctx context.Context, in *Instance) (metav1.OwnerReference, error) {
	ns := l.Params.Config.Namespace
	if in.job {
		created, err := createRetrying(ctx, l.Log, l.Kube.Jobs(ns), l.Params.Job(in.Name, in.Secret, l.PeerPod), in.Name, true)
		if err != nil {
			return metav1.OwnerReference{}, fmt.Errorf("create job %s/%s: %w", ns, in.Name, err)
		}
		return metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: created.Name, UID: created.UID}, nil
	}
	created, err := createRetrying(ctx, l.Log, l.Kube.Pods(ns), l.Params.Pod(in.Name, in.Secret, l.PeerPod), in.Name, true)
	if err != nil {
		return metav1.OwnerReference{}, fmt.Errorf("create pod %s/%s: %w", ns, in.Name, err)
	}
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: created.Name, UID: created.UID}, nil
}

func (l *Launcher) ownSecret(ctx context.Context, secret string, owner metav1.OwnerReference) {
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":%q,"kind":%q,"name":%q,"uid":%q}]}}`, owner.APIVersion, owner.Kind, owner.Name, owner.UID)
	_, err := l.Kube.Secrets(l.Params.Config.Namespace).Patch(ctx, secret, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && ctx.Err() == nil {
		l.Log.Printf("warning: could not make %s own its secret: %v", owner.Name, err)
	}
}

// Wait follows the instance's pod until its container ends (an *ExitError), it
// cannot start (another error), it is deleted, or ctx ends (ctx's error). Once the
// container runs, its log is copied to the peer's.
func (l *Launcher) Wait(ctx context.Context, in *Instance) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var logs sync.WaitGroup
	defer logs.Wait()
	timeout := time.NewTimer(l.Params.Config.LaunchTimeout.Duration)
	defer timeout.Stop()
	events := l.podEvents(ctx, in.Name)
	scheduled, started := false, false
	for {
		var ev PodEvent
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			if !started {
				return fmt.Errorf("%s: container not started after %s", in.Name, l.Params.Config.LaunchTimeout.Duration)
			}
			continue
		case ev, ok = <-events:
			if !ok {
				return ctx.Err()
			}
		}
		if ev.Deleted {
			return fmt.Errorf("pod %s was deleted", ev.Pod.Name)
		}
		st := Classify(ev.Pod, podspec.ContainerName)
		if st.Scheduled && !scheduled {
			scheduled = true
			l.Log.Printf("pod scheduled on %s (%s)", st.Node, l.Log.Elapsed())
		}
		if !started && (st.State == Started || st.State == Exited) {
			started = true
			l.Log.Printf("container started (%s)", l.Log.Elapsed())
			logs.Add(1)
			pod := ev.Pod.Name
			go func() {
				defer logs.Done()
				StreamLogs(ctx, l.Kube, l.Params.Config.Namespace, pod, podspec.ContainerName, l.Log, func(line string) { l.Log.Chaincode(pod, line) })
			}()
		}
		switch st.State {
		case Failed:
			return st.Err
		case Exited:
			waitTimeout(&logs, 2*time.Second) // the log ends with the container; print all of it first
			var exit *ExitError
			if errors.As(st.Err, &exit) {
				l.Log.Printf("container exited with code %d after %s", exit.Code, l.Log.Elapsed())
			}
			return st.Err
		}
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// stopPatience is how long deleting may take after the peer's SIGTERM: SIGKILL
// follows in 5 s.
const stopPatience = 4 * time.Second

// Delete removes the instance's objects, retrying while the API server does not
// answer: a failed launch must not leave its Pod and key Secret behind because the
// API server was restarting. It uses a context of its own, since it runs when the
// launch's ctx may be cancelled already; that one only says how long it may take
// (after the peer's SIGTERM, less than the 5 s before SIGKILL).
func (l *Launcher) Delete(launch context.Context, in *Instance) {
	patience := createPatience
	if launch.Err() != nil {
		patience = stopPatience
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	ns := l.Params.Config.Namespace
	zero := int64(0)
	bg := metav1.DeletePropagationBackground
	if in.job {
		l.deleteRetrying(ctx, "job "+in.Name, func(ctx context.Context) error {
			return l.Kube.Jobs(ns).Delete(ctx, in.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
		})
		// The job's pods directly too: waiting for the garbage collector is slower.
		sel := labels.Set{podspec.LabelInstance: in.Name}.String()
		l.deleteRetrying(ctx, "pods of job "+in.Name, func(ctx context.Context) error {
			return l.Kube.Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: sel})
		})
	} else {
		l.deleteRetrying(ctx, "pod "+in.Name, func(ctx context.Context) error {
			return l.Kube.Pods(ns).Delete(ctx, in.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		})
	}
	if in.Secret != "" {
		l.deleteRetrying(ctx, "secret "+in.Secret, func(ctx context.Context) error {
			return l.Kube.Secrets(ns).Delete(ctx, in.Secret, metav1.DeleteOptions{})
		})
	}
}

func (l *Launcher) deleteRetrying(ctx context.Context, what string, del func(context.Context) error) {
	var retry backoff
	for {
		err := ignoreNotFound(del(ctx))
		if err == nil {
			return
		}
		if !transient(err) || ctx.Err() != nil {
			l.Log.Printf("warning: delete %s: %v", what, err)
			return
		}
		d := retry.next()
		l.Log.Printf("warning: delete %s: %v; retrying in %s", what, err, d)
		if !sleep(ctx, d) {
			l.Log.Printf("warning: delete %s: gave up: %v", what, err)
			return
		}
	}
}

// Sweep deletes every Pod, Job and Secret that sel matches.
func Sweep(ctx context.Context, kc kube.Client, ns string, sel string) error {
	zero := int64(0)
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &bg}
	list := metav1.ListOptions{LabelSelector: sel}
	var errs []error
	if err := ignoreNotFound(kc.Jobs(ns).DeleteCollection(ctx, opts, list)); err != nil {
		errs = append(errs, fmt.Errorf("delete jobs %s: %w", sel, err))
	}
	if err := ignoreNotFound(kc.Pods(ns).DeleteCollection(ctx, opts, list)); err != nil {
		errs = append(errs, fmt.Errorf("delete pods %s: %w", sel, err))
	}
	if err := ignoreNotFound(kc.Secrets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, list)); err != nil {
		errs = append(errs, fmt.Errorf("delete secrets %s: %w", sel, err))
	}
	return errors.Join(errs...)
}

// SweepLeftovers deletes, in the background, what earlier runs of this peer and
// package left behind (the peer or run was killed): it would otherwise run on,
// connected to nothing. It runs after the first instance was created (keep), so that
// the new chaincode does not wait for it. The returned function waits for it.
func (l *Launcher) SweepLeftovers(ctx context.Context, keep string) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := Sweep(ctx, l.Kube, l.Params.Config.Namespace, l.Params.Leftovers(keep).String()); err != nil && ctx.Err() == nil {
			l.Log.Printf("warning: clean-up of earlier launches: %v", err)
		}
	}()
	return func() { <-done }
}

// RunResident runs a resident launch: one Pod as long as the chaincode lives. It
// returns nil after ctx is cancelled (the peer asked run to stop) and everything was
// deleted, an *ExitError when the chaincode exited, another error when the launch
// failed.
func (l *Launcher) RunResident(ctx context.Context) error {
	in, err := l.Start(ctx, l.Params.NewName())
	if err != nil {
		return err
	}
	swept := l.SweepLeftovers(ctx, in.Name)
	defer swept()
	err = l.Wait(ctx, in)
	if ctx.Err() != nil {
		l.Log.Printf("stopping: deleting %s and its secret", in.Name)
		err = nil
	}
	l.Delete(ctx, in)
	return err
}
