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
	return Follow(ctx, l.Kube, l.Params.Config.Namespace, labels.Set{podspec.LabelInstance: name}.String(), l.Log)
}

// Follow passes on the changes of the pods sel matches in ns until ctx ends (then
// the channel closes). An API server that is restarting or briefly unreachable must
// not take a running chaincode (or build) down with it, so a broken watch is resumed
// from the last resource version seen, with backoff, for as long as it takes.
func Follow(ctx context.Context, kc kube.Client, ns, sel string, log *Log) <-chan PodEvent {
	out := make(chan PodEvent)
	// The API server filters by sel; checking again here keeps a watch that does not
	// (a test double, a proxy) from reporting another pod's end as ours.
	match, err := labels.Parse(sel)
	if err != nil {
		match = labels.Nothing()
	}
	go func() {
		defer close(out)
		pods := kc.Pods(ns)
		rv := ""
		var retry backoff
		for ctx.Err() == nil {
			w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv})
			if err != nil {
				rv = ""
				d := retry.next()
				if ctx.Err() == nil {
					log.Printf("warning: watch pods %s: %v; retrying in %s", sel, err, d)
				}
				sleep(ctx, d)
				continue
			}
			retry.reset()
			rv = forward(ctx, w, rv, match, out)
		}
	}()
	return out
}

// forward passes one watch's events on until it ends, and returns the resource
// version to resume from ("" after an error event: most often an expired version).
func forward(ctx context.Context, w watch.Interface, rv string, match labels.Selector, out chan<- PodEvent) string {
	defer w.Stop()
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-ctx.Done():
			return rv
		case ev, ok = <-w.ResultChan():
			if !ok {
				return rv
			}
		}
		if ev.Type == watch.Error {
			return ""
		}
		p, isPod := ev.Object.(*corev1.Pod)
		if !isPod {
			continue
		}
		rv = p.ResourceVersion
		if !match.Matches(labels.Set(p.Labels)) {
			continue
		}
		select {
		case out <- PodEvent{Pod: p, Deleted: ev.Type == watch.Deleted}:
		case <-ctx.Done():
			return rv
		}
	}
}
