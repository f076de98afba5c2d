// Package kubetest has test doubles of the Kubernetes API for unit tests.
package kubetest

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// NewFake is a fake clientset that also implements DeleteCollection by label, which
// client-go's object tracker does not.
func NewFake(objs ...runtime.Object) *fake.Clientset {
	kube := fake.NewClientset(objs...)
	kube.PrependReactor("delete-collection", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		// Reactors run under the fake's lock: use the tracker, not the clientset.
		dc := a.(k8stesting.DeleteCollectionAction)
		sel := dc.GetListRestrictions().Labels
		gvr, ns := a.GetResource(), a.GetNamespace()
		kinds := map[string]schema.GroupVersionKind{"pods": corev1.SchemeGroupVersion.WithKind("Pod"), "secrets": corev1.SchemeGroupVersion.WithKind("Secret"), "jobs": batchv1.SchemeGroupVersion.WithKind("Job")}
		gvk, ok := kinds[gvr.Resource]
		if !ok {
			return true, nil, nil
		}
		obj, err := kube.Tracker().List(gvr, gvk, ns)
		if err != nil {
			return true, nil, err
		}
		items, _ := meta.ExtractList(obj)
		for _, it := range items {
			m, _ := meta.Accessor(it)
			if sel.Matches(labels.Set(m.GetLabels())) {
				_ = kube.Tracker().Delete(gvr, ns, m.GetName())
			}
		}
		return true, nil, nil
	})
	return kube
}
