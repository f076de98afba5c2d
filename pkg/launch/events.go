package launch

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/podspec"
)

// PodEvent is one change of a followed pod.
type PodEvent struct {
	Pod     *corev1.Pod
	Deleted bool
}

// podEvents follows the pod of one instance (found by its instance label: a Job
// names its own pod).
func (l *Launcher) podEvents(ctx context.Context, name string) <-chan PodEvent {
	return Follow(ctx, l.Kube, l.Params.Config.Namespace, labels.Set{podspec.LabelInstance: name}.String(), name, l.Log)
}

// Follow passes on the changes of the pods sel matches in ns until ctx ends (then
// the channel closes). An API server that is restarting or briefly unreachable must
// not take a running chaincode (or build) down with it, so a broken watch is resumed
// from the last resource version seen, with backoff, for as long as it takes. When
// that version is lost, the pods are listed again before the next watch: a pod deleted
// while the watch was down is reported deleted, not waited for forever.
// what names them in log lines.
func Follow(ctx context.Context, kc kube.Client, ns, sel, what string, log *Log) <-chan PodEvent {
	f := &follower{pods: kc.Pods(ns), sel: sel, what: what, log: log, out: make(chan PodEvent)}
	// The API server filters by sel; checking again here keeps a watch that does not
	// (a test double, a proxy) from reporting another pod's end as ours.
	var err error
	if f.match, err = labels.Parse(sel); err != nil {
		f.match = labels.Nothing()
	}
	go f.run(ctx)
	return f.out
}

type follower struct {
	pods  kube.Resource[*corev1.Pod, *corev1.PodList]
	sel   string
	what  string
	match labels.Selector
	log   *Log
	out   chan PodEvent

	rv     string
	relist bool        // rv was lost after a watch broke
	last   *corev1.Pod // the last pod reported
}

func (f *follower) run(ctx context.Context) {
	defer close(f.out)
	var retry backoff
	for ctx.Err() == nil {
		err := f.list(ctx)
		var w watch.Interface
		if err == nil {
			w, err = f.pods.Watch(ctx, metav1.ListOptions{LabelSelector: f.sel, ResourceVersion: f.rv})
		}
		if err != nil {
			f.rv, f.relist = "", true
			d := retry.next()
			if ctx.Err() == nil {
				f.log.Printf("warning: watch pods of %s: %v; retrying in %s", f.what, err, d)
			}
			sleep(ctx, d)
			continue
		}
		retry.reset()
		f.forward(ctx, w)
		if f.rv == "" {
			f.relist = true
		}
	}
}

// list reports the pods as they are now, when a broken watch lost its place.
func (f *follower) list(ctx context.Context) error {
	if !f.relist {
		return nil
	}
	list, err := f.pods.List(ctx, metav1.ListOptions{LabelSelector: f.sel})
	if err != nil {
		return err
	}
	f.relist, f.rv = false, list.ResourceVersion
	found := false
	for i := range list.Items {
		if f.match.Matches(labels.Set(list.Items[i].Labels)) {
			found = true
			f.send(ctx, PodEvent{Pod: &list.Items[i]})
		}
	}
	if !found && f.last != nil {
		f.send(ctx, PodEvent{Pod: f.last, Deleted: true})
	}
	return nil
}

func (f *follower) send(ctx context.Context, ev PodEvent) {
	f.last = ev.Pod
	select {
	case f.out <- ev:
	case <-ctx.Done():
	}
}

// forward passes one watch's events on until it ends; f.rv is where to resume ("" after
// an error event: most often an expired version).
func (f *follower) forward(ctx context.Context, w watch.Interface) {
	defer w.Stop()
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ev, ok = <-w.ResultChan():
			if !ok {
				return
			}
		}
		if ev.Type == watch.Error {
			f.rv = ""
			return
		}
		p, isPod := ev.Object.(*corev1.Pod)
		if !isPod {
			continue
		}
		f.rv = p.ResourceVersion
		if !f.match.Matches(labels.Set(p.Labels)) {
			continue
		}
		f.send(ctx, PodEvent{Pod: p, Deleted: ev.Type == watch.Deleted})
	}
}
