package launch

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/podspec"
)

// Prepull gets img onto every schedulable node that may run the chaincode (the
// config's node selector), so that the first cold start does not pay for the pull.
// It starts one throwaway pod per node and deletes them all once their images are
// pulled (or the pull failed, which it reports).
func Prepull(ctx context.Context, kc kube.Client, cfg *config.Config, img chaincode.ImageRef, log io.Writer) error {
	nodes, err := kc.Nodes().List(ctx, metav1.ListOptions{LabelSelector: labels.Set(cfg.NodeSelector).String()})
	if err != nil {
		return fmt.Errorf("prepull: list nodes: %w", err)
	}
	ns := cfg.Namespace
	sel := podspec.PrepullSelector(img).String()
	zero := int64(0)
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = kc.Pods(ns).DeleteCollection(dctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: sel})
	}()
	want := 0
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable {
			continue
		}
		if _, err := kc.Pods(ns).Create(ctx, podspec.PrepullPod(cfg, img, n.Name), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("prepull on %s: %w", n.Name, err)
		}
		want++
	}
	if want == 0 {
		return nil
	}
	start := time.Now()
	w, err := kc.Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("prepull: watch: %w", err)
	}
	defer w.Stop()
	done := map[string]bool{}
	for len(done) < want {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return fmt.Errorf("prepull: watch closed")
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if !isPod || ev.Type == watch.Deleted || done[pod.Spec.NodeName] {
				continue
			}
			st := containerStatus(pod, podspec.ContainerName)
			if st == nil {
				continue
			}
			if wt := st.State.Waiting; wt != nil {
				if fatalWaiting(wt.Reason) {
					return fmt.Errorf("prepull on %s: %s: %s", pod.Spec.NodeName, wt.Reason, wt.Message)
				}
				continue // still pulling or creating
			}
			done[pod.Spec.NodeName] = true
			_, _ = fmt.Fprintf(log, "kubecc: image on node %s (%s)\n", pod.Spec.NodeName, time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
}
