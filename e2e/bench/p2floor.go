package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// p2Floor measures what the kubelet alone costs to start a pod whose process dials
// the host, as a function of the pod's volumes: none, the emptyDir /tmp a kubecc pod
// has, and that plus the Secret with the TLS material. The process is the harness's
// netcheck tool (static, a one-layer image already on the node), so no chaincode,
// peer or kubecc is involved: it is the floor under P2's resident launch.
func p2Floor(ctx context.Context, n *network, runs int) (string, error) {
	tools := filepath.Join(os.Getenv("HOME"), ".cache/kubecc/tools/bin")
	if c := os.Getenv("KUBECC_CACHE"); c != "" {
		tools = filepath.Join(c, "tools/bin")
	}
	out, err := exec.CommandContext(ctx, filepath.Join(tools, "pauseimage"), "-binary", filepath.Join(tools, "netcheck"),
		"-ref", n.vars["REGISTRY"]+"/kubecc-netcheck:e2e", "-path", "/netcheck").Output()
	if err != nil {
		return "", fmt.Errorf("netcheck image: %w", err)
	}
	image := strings.TrimSpace(string(out))
	lis, err := net.Listen("tcp", net.JoinHostPort(n.vars["NODE_IP"], "0"))
	if err != nil {
		return "", err
	}
	defer func() { _ = lis.Close() }()
	dialed := make(chan time.Time, 4)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			dialed <- time.Now()
			_, _ = fmt.Fprintf(c, "kubecc-ok %s\n", c.RemoteAddr())
			_ = c.Close()
		}
	}()
	pods, secrets := n.kube.CoreV1().Pods(n.ns), n.kube.CoreV1().Secrets(n.ns)
	const secret = "kubecc-bench-floor"
	if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret}, Data: map[string][]byte{"key": []byte("x")}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	defer func() { _ = secrets.Delete(context.WithoutCancel(ctx), secret, metav1.DeleteOptions{}) }()
	tmp := corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	tls := corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}
	variants := []struct {
		what string
		vols []corev1.Volume
	}{
		{"no volume", nil},
		{"emptyDir /tmp", []corev1.Volume{tmp}},
		{"emptyDir /tmp + Secret (a kubecc pod with TLS on)", []corev1.Volume{tmp, tls}},
	}
	res := make([]Sample, len(variants))
	no, zero := false, int64(0)
	for i := 0; i < runs; i++ {
		for v, variant := range variants {
			var mounts []corev1.VolumeMount
			for _, vol := range variant.vols {
				mounts = append(mounts, corev1.VolumeMount{Name: vol.Name, MountPath: "/" + vol.Name})
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "kubecc-bench-floor-", Labels: map[string]string{"kubecc.io/bench": "floor"}},
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &zero, Volumes: variant.vols,
					Containers: []corev1.Container{{Name: "dial", Image: image, ImagePullPolicy: corev1.PullIfNotPresent, VolumeMounts: mounts,
						Args: []string{"-timeout", "30s", "dial", lis.Addr().String()}}}}}
			start := time.Now()
			created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			select {
			case t := <-dialed:
				res[v] = append(res[v], t.Sub(start).Seconds())
			case <-time.After(30 * time.Second):
				return "", fmt.Errorf("pod %s (%s) did not dial the host in 30 s", created.Name, variant.what)
			case <-ctx.Done():
				return "", ctx.Err()
			}
			_ = pods.Delete(ctx, created.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			time.Sleep(300 * time.Millisecond) // let the kubelet tear it down before the next
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The floor under kubecc's launch: the kubelet starting a pod whose process dials the host (the harness's static `netcheck` tool, image on the node; pod created → connection accepted, %d runs each, alternated; no chaincode, peer or kubecc involved):\n\n| pod volumes | pod created → process dialed |\n|---|---|\n", runs)
	for v, variant := range variants {
		fmt.Fprintf(&b, "| %s | %s |\n", variant.what, res[v].Format(ms))
	}
	fmt.Fprintf(&b, "\nA pod with any volume waits for the kubelet's volume manager, which checks whether a pod's volumes are mounted every 300 ms (`podAttachAndMountRetryInterval` in the kubelet's volumemanager); the mounts are seldom done by the first check, so a pod with volumes starts about one interval later: here %s more than a pod without. kubecc's pod keeps both volumes: the Secret is where the launch's TLS key must be (not in env or args), and the read-only root file system needs a writable /tmp.\n\n",
		ms(res[2].Median()-res[0].Median()))
	return b.String(), nil
}
