// Package kube is the part of the Kubernetes API the hooks use, on a client that links
// only the core and batch API types. run is one process per running chaincode, and
// most of its memory is its own executable: client-go's full clientset (every API
// group's types, codecs and apply configurations) would double it.
package kube

import (
	"context"
	"fmt"
	"io"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Resource is a typed client of one kind, in one namespace or cluster-wide. client-go's
// generated clients (PodInterface, ...) have these methods too.
type Resource[T runtime.Object, L runtime.Object] interface {
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	DeleteCollection(ctx context.Context, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error
}

// Client is what the build and run hooks need of the cluster.
type Client interface {
	Pods(namespace string) Resource[*corev1.Pod, *corev1.PodList]
	Secrets(namespace string) Resource[*corev1.Secret, *corev1.SecretList]
	Jobs(namespace string) Resource[*batchv1.Job, *batchv1.JobList]
	Nodes() Resource[*corev1.Node, *corev1.NodeList]
	// PodLogs streams a container's log.
	PodLogs(ctx context.Context, namespace, name string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
}

type client struct {
	core, batch rest.Interface
	params      runtime.ParameterCodec
}

// New is a Client for the cluster rc names. Core and batch share one HTTP client, so
// one connection to the API server.
func New(rc *rest.Config) (Client, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, batchv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("kubernetes scheme: %w", err)
		}
	}
	// Status, WatchEvent and the option types, unversioned, as the API server sends them.
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme).WithoutConversion()
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	restFor := func(apiPath string, gv schema.GroupVersion) (rest.Interface, error) {
		c := rest.CopyConfig(rc)
		c.APIPath, c.GroupVersion, c.NegotiatedSerializer = apiPath, &gv, codecs
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		rcl, err := rest.RESTClientForConfigAndClient(c, hc)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client for %s: %w", gv, err)
		}
		return rcl, nil
	}
	cl := &client{params: runtime.NewParameterCodec(scheme)}
	if cl.core, err = restFor("/api", corev1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if cl.batch, err = restFor("/apis", batchv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	return cl, nil
}

func (c *client) Pods(ns string) Resource[*corev1.Pod, *corev1.PodList] {
	return &resource[*corev1.Pod, *corev1.PodList]{c.core, c.params, "pods", ns,
		func() *corev1.Pod { return &corev1.Pod{} }, func() *corev1.PodList { return &corev1.PodList{} }}
}

func (c *client) Secrets(ns string) Resource[*corev1.Secret, *corev1.SecretList] {
	return &resource[*corev1.Secret, *corev1.SecretList]{c.core, c.params, "secrets", ns,
		func() *corev1.Secret { return &corev1.Secret{} }, func() *corev1.SecretList { return &corev1.SecretList{} }}
}

func (c *client) Jobs(ns string) Resource[*batchv1.Job, *batchv1.JobList] {
	return &resource[*batchv1.Job, *batchv1.JobList]{c.batch, c.params, "jobs", ns,
		func() *batchv1.Job { return &batchv1.Job{} }, func() *batchv1.JobList { return &batchv1.JobList{} }}
}

func (c *client) Nodes() Resource[*corev1.Node, *corev1.NodeList] {
	return &resource[*corev1.Node, *corev1.NodeList]{c.core, c.params, "nodes", "",
		func() *corev1.Node { return &corev1.Node{} }, func() *corev1.NodeList { return &corev1.NodeList{} }}
}

func (c *client) PodLogs(ctx context.Context, ns, name string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return c.core.Get().Namespace(ns).Resource("pods").Name(name).SubResource("log").VersionedParams(opts, c.params).Stream(ctx)
}

// resource is a typed REST client of one kind. client-go's gentype does the same, but
// it links client-go's fake-client machinery (OpenAPI models, strategic merge patch)
// into every binary that uses it.
type resource[T runtime.Object, L runtime.Object] struct {
	rest     rest.Interface
	params   runtime.ParameterCodec
	name, ns string
	newObj   func() T
	newList  func() L
}

func (r *resource[T, L]) req(verb string) *rest.Request {
	return r.rest.Verb(verb).NamespaceIfScoped(r.ns, r.ns != "").Resource(r.name)
}

func (r *resource[T, L]) Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error) {
	out := r.newObj()
	err := r.req("POST").VersionedParams(&opts, r.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

func (r *resource[T, L]) Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error) {
	out := r.newObj()
	err := r.req("GET").Name(name).VersionedParams(&opts, r.params).Do(ctx).Into(out)
	return out, err
}

func (r *resource[T, L]) List(ctx context.Context, opts metav1.ListOptions) (L, error) {
	out := r.newList()
	err := r.req("GET").VersionedParams(&opts, r.params).Timeout(timeout(opts)).Do(ctx).Into(out)
	return out, err
}

func (r *resource[T, L]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return r.req("GET").VersionedParams(&opts, r.params).Timeout(timeout(opts)).Watch(ctx)
}

func (r *resource[T, L]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error) {
	out := r.newObj()
	err := r.req("PATCH").Name(name).SubResource(subresources...).VersionedParams(&opts, r.params).SetHeader("Content-Type", string(pt)).Body(data).Do(ctx).Into(out)
	return out, err
}

func (r *resource[T, L]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.req("DELETE").Name(name).Body(&opts).Do(ctx).Error()
}

func (r *resource[T, L]) DeleteCollection(ctx context.Context, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error {
	return r.req("DELETE").VersionedParams(&listOpts, r.params).Timeout(timeout(listOpts)).Body(&opts).Do(ctx).Error()
}

func timeout(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}
