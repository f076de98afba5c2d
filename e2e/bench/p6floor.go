package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// podStartFloor measures what any build pod pays before its process runs: from the
// create request to the first line the process prints (the container runtime's
// timestamp of that line), for a pod of the build image without volumes and with the
// build cache volume. The kubelet waits for a pod's volumes in rounds, so the second
// is the floor of a Job that keeps a cache.
func podStartFloor(ctx context.Context, kubeconfig, ns, img, claim string, n int) (bare, cached Sample, err error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i < n; i++ {
		for _, withCache := range []bool{false, true} {
			d, err := timePodStart(ctx, kc, ns, img, claim, withCache)
			if err != nil {
				return nil, nil, err
			}
			if withCache {
				cached = append(cached, d.Seconds())
			} else {
				bare = append(bare, d.Seconds())
			}
		}
	}
	return bare, cached, nil
}

func timePodStart(ctx context.Context, kc kubernetes.Interface, ns, img, claim string, withCache bool) (time.Duration, error) {
	no, yes, uid := false, true, int64(10001)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-p6-floor-", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: &no,
			EnableServiceLinks:           &no,
			SecurityContext:              &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid},
			Containers: []corev1.Container{{
				Name: "c", Image: img, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"/opt/kubecc/bin/kubecc", "version"},
			}},
		},
	}
	if withCache {
		pod.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	created, err := kc.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return 0, fmt.Errorf("create pod: %w", err)
	}
	defer func() {
		zero := int64(0)
		_ = kc.CoreV1().Pods(ns).Delete(context.Background(), created.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}()
	w, err := kc.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", created.Name).String(), ResourceVersion: created.ResourceVersion})
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		if p.Status.Phase == corev1.PodFailed {
			return 0, fmt.Errorf("pod %s failed: %s", p.Name, p.Status.Message)
		}
		if p.Status.Phase != corev1.PodSucceeded {
			continue
		}
		stream, err := kc.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Timestamps: true}).Stream(ctx)
		if err != nil {
			return 0, err
		}
		defer func() { _ = stream.Close() }()
		sc := bufio.NewScanner(stream)
		if !sc.Scan() {
			return 0, fmt.Errorf("pod %s printed nothing", p.Name)
		}
		ts, _, _ := strings.Cut(sc.Text(), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return 0, fmt.Errorf("pod %s log: %w", p.Name, err)
		}
		return at.Sub(start), nil
	}
	return 0, errors.New("pod watch ended before the pod did")
}
