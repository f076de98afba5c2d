// Package clientset adapts client-go's generated clientset (a real one, or its fake
// for unit tests) to kube.Client. The hooks do not link it: it is what they avoid.
package clientset

import (
	"context"
	"io"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubecc/kubecc/pkg/kube"
)

// Wrap makes cs a kube.Client.
func Wrap(cs kubernetes.Interface) kube.Client { return wrapped{cs} }

type wrapped struct{ cs kubernetes.Interface }

func (w wrapped) Pods(ns string) kube.Resource[*corev1.Pod, *corev1.PodList] {
	return w.cs.CoreV1().Pods(ns)
}

func (w wrapped) Secrets(ns string) kube.Resource[*corev1.Secret, *corev1.SecretList] {
	return w.cs.CoreV1().Secrets(ns)
}

func (w wrapped) Jobs(ns string) kube.Resource[*batchv1.Job, *batchv1.JobList] {
	return w.cs.BatchV1().Jobs(ns)
}

func (w wrapped) Nodes() kube.Resource[*corev1.Node, *corev1.NodeList] {
	return w.cs.CoreV1().Nodes()
}

func (w wrapped) PodLogs(ctx context.Context, ns, name string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return w.cs.CoreV1().Pods(ns).GetLogs(name, opts).Stream(ctx)
}
