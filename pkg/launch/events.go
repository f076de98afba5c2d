package launch

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubecc/kubecc/pkg/podspec"
)

// podEvent is one change of an instance's pod.
type podEvent struct {
	pod     *corev1.Pod
	deleted bool
}

// podEvents follows the pod of one instance (found by its instance label: a Job
// names its own pod) until ctx ends. An API server that is restarting or briefly
// unreachable must not take a running chaincode down with it, so a broken watch is
// resumed from the last resource version seen, with backoff, for as long as it takes.
func (l *Launcher) podEvents(ctx context.Context, name string) <-chan podEvent {
	out := make(chan podEvent)
	go func() {
		defer close(out)
		pods := l.Kube.Pods(l.Params.Config.Namespace)
		sel := labels.Set{podspec.LabelInstance: name}.String()
		rv := ""
		var retry backoff
		for ctx.Err() == nil {
			w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv})
			if err != nil {
				rv = ""
				d := retry.next()
				if ctx.Err() == nil {
					l.Log.Printf("warning: watch pods of %s: %v; retrying in %s", name, err, d)
				}
				sleep(ctx, d)
				continue
			}
			retry.reset()
			rv = l.forward(ctx, w, rv, out)
		}
	}()
	return out
}

// forward passes one watch's events on until it ends, and returns the resource
// version to resume from ("" after an error event: most often an expired version).
func (l *Launcher) forward(ctx context.Context, w watch.Interface, rv string, out chan<- podEvent) string {
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
		select {
		case out <- podEvent{pod: p, deleted: ev.Type == watch.Deleted}:
		case <-ctx.Done():
			return rv
		}
	}
}
