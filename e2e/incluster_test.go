//go:build e2e

package e2e

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubecc/kubecc/pkg/image"
)

// The in-cluster network of e2e/incluster/up.sh: a stock-like peer (static image, no
// shell, no Go, no kubecc) as a Deployment in the harness cluster, with kubecc added
// only through the install kit (deploy/). The harness type drives it as it drives the
// host-process network, from the env file up.sh writes.

const (
	inClusterEnv = "incluster/env"
	// creatorPolicy admits kubecc's chaincode objects in the in-cluster namespace only
	// when the peer's service account creates them (see requireCreator).
	creatorPolicy = "kubecc-incluster-e2e-creator"
)

// newInClusterHarness is a harness on the cluster env and the in-cluster env file; it
// skips the test when the in-cluster network is not up.
func newInClusterHarness(t *testing.T) *harness {
	t.Helper()
	root := os.Getenv("KUBECC_E2E_ROOT")
	if root == "" {
		root = "/tmp/kubecc-e2e"
	}
	if _, err := os.Stat(filepath.Join(root, inClusterEnv)); err != nil {
		t.Skipf("the in-cluster Fabric network is not up (no %s): run bash e2e/incluster/up.sh", filepath.Join(root, inClusterEnv))
	}
	repo, _ := filepath.Abs("..")
	h := &harness{root: root, repo: repo}
	vars := map[string]string{}
	for _, f := range []string{"cluster/env", inClusterEnv} {
		v, err := loadEnvFile(filepath.Join(root, f))
		if err != nil {
			t.Fatalf("in-cluster network: %v", err)
		}
		for k, val := range v {
			vars[k] = val
		}
	}
	h.vars = vars
	for k, v := range vars {
		h.env = append(h.env, k+"="+v)
	}
	h.ns = vars["INCLUSTER_NAMESPACE"]
	rc, err := clientcmd.BuildConfigFromFlags("", vars["KUBECONFIG"])
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	if h.kube, err = kubernetes.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	reg := vars["REGISTRY"]
	h.registry = &image.Registry{Insecure: func(host string) bool { return host == reg }}
	if _, err := h.kube.CoreV1().Namespaces().Get(context.Background(), h.ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("%s exists but namespace %s does not (%v): the cluster was restarted; run bash e2e/incluster/up.sh again", filepath.Join(root, inClusterEnv), h.ns, err)
	}
	return h
}

// peerPod returns the one running, ready, not deleting peer Pod other than notName.
func (h *harness) peerPod(t *testing.T, notName string, timeout time.Duration) corev1.Pod {
	t.Helper()
	var found corev1.Pod
	eventually(t, timeout, "a ready peer Pod", func() bool {
		list, err := h.kube.CoreV1().Pods(h.ns).List(context.Background(), metav1.ListOptions{LabelSelector: h.vars["INCLUSTER_PEER_SELECTOR"]})
		if err != nil {
			return false
		}
		var ready []corev1.Pod
		for _, p := range list.Items {
			if p.Name == notName || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready = append(ready, p)
				}
			}
		}
		if len(ready) == 1 {
			found = ready[0]
			return true
		}
		return false
	})
	// Ready is the operations endpoint; the channel may take a moment more.
	eventually(t, 60*time.Second, "the peer to serve channel "+h.vars["CHANNEL"], func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := h.run(ctx, "peer", "channel", "getinfo", "-c", h.vars["CHANNEL"])
		return err == nil
	})
	return found
}

// peerPodLog is the log of a peer Pod's peer container.
func (h *harness) peerPodLog(t *testing.T, pod string) string {
	t.Helper()
	b, err := h.kube.CoreV1().Pods(h.ns).GetLogs(pod, &corev1.PodLogOptions{Container: "peer"}).DoRaw(context.Background())
	if err != nil {
		t.Logf("log of %s: %v", pod, err)
	}
	return string(b)
}

// ownedBy lists the kubecc-managed Pods, Jobs and Secrets whose owner reference
// (directly, or through the chaincode Pod or Job that owns a Secret) is the Pod uid.
func (h *harness) ownedBy(t *testing.T, uid string) []string {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubecc"}
	owners := map[string]bool{uid: true}
	var out []string
	owned := func(refs []metav1.OwnerReference) bool {
		for _, r := range refs {
			if owners[string(r.UID)] {
				return true
			}
		}
		return false
	}
	pods, err := h.kube.CoreV1().Pods(h.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := h.kube.BatchV1().Jobs(h.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if owned(p.OwnerReferences) {
			owners[string(p.UID)] = true
			out = append(out, "pod/"+p.Name)
		}
	}
	for _, j := range jobs.Items {
		if owned(j.OwnerReferences) {
			owners[string(j.UID)] = true
			out = append(out, "job/"+j.Name)
		}
	}
	secrets, err := h.kube.CoreV1().Secrets(h.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if owned(s.OwnerReferences) {
			out = append(out, "secret/"+s.Name)
		}
	}
	return out
}

func ownerIs(refs []metav1.OwnerReference, pod corev1.Pod) bool {
	for _, r := range refs {
		if r.Kind == "Pod" && r.Name == pod.Name && r.UID == pod.UID {
			return true
		}
	}
	return false
}

// requireCreator installs a ValidatingAdmissionPolicy that refuses to create kubecc's
// chaincode Pods, Jobs and Secrets in the in-cluster namespace for anyone but the peer's
// service account (Pods a Job controller creates for a Job are not checked). Every
// chaincode object that exists while it is in force was created by that account: the
// audit-free proof that the hooks run with the peer Pod's own identity. It waits until
// the API server enforces it (an admin's dry-run create is refused).
func (h *harness) requireCreator(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	user := "system:serviceaccount:" + h.ns + ":fabric-peer"
	fail := admissionv1.Fail
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: creatorPolicy},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{
				ResourceRules: []admissionv1.NamedRuleWithOperations{
					{RuleWithOperations: admissionv1.RuleWithOperations{Operations: []admissionv1.OperationType{admissionv1.Create},
						Rule: admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods", "secrets"}}}},
					{RuleWithOperations: admissionv1.RuleWithOperations{Operations: []admissionv1.OperationType{admissionv1.Create},
						Rule: admissionv1.Rule{APIGroups: []string{"batch"}, APIVersions: []string{"v1"}, Resources: []string{"jobs"}}}},
				},
			},
			MatchConditions: []admissionv1.MatchCondition{
				{Name: "kubecc-object", Expression: `has(object.metadata.labels) && 'app.kubernetes.io/managed-by' in object.metadata.labels && object.metadata.labels['app.kubernetes.io/managed-by'] == 'kubecc'`},
				{Name: "not-a-job-pod", Expression: `!has(object.metadata.ownerReferences) || !object.metadata.ownerReferences.exists(o, o.kind == 'Job')`},
			},
			Validations: []admissionv1.Validation{{
				Expression: fmt.Sprintf("request.userInfo.username == %q", user),
				Message:    "kubecc chaincode objects in this namespace may only be created by " + user,
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: creatorPolicy},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        creatorPolicy,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": h.ns},
			}},
		},
	}
	api := h.kube.AdmissionregistrationV1()
	_ = api.ValidatingAdmissionPolicyBindings().Delete(ctx, creatorPolicy, metav1.DeleteOptions{})
	_ = api.ValidatingAdmissionPolicies().Delete(ctx, creatorPolicy, metav1.DeleteOptions{})
	if _, err := api.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), creatorPolicy, metav1.DeleteOptions{})
		_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), creatorPolicy, metav1.DeleteOptions{})
	})
	probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-creator-probe-", Namespace: h.ns,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "kubecc"}}}
	took := eventually(t, 30*time.Second, "the creator policy enforced", func() bool {
		_, err := h.kube.CoreV1().Secrets(h.ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return apierrors.IsInvalid(err) || apierrors.IsForbidden(err)
	})
	t.Logf("policy %s enforced after %s: only %s may create kubecc objects in %s", creatorPolicy, took.Round(time.Millisecond), user, h.ns)
	return user
}

// imageFiles lists the regular files and links of an image (all layers).
func (h *harness) imageFiles(t *testing.T, ref string) map[string]bool {
	t.Helper()
	img, err := h.registry.Image(context.Background(), ref, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if hdr.Typeflag != tar.TypeDir {
				files["/"+strings.TrimPrefix(path.Clean(hdr.Name), "/")] = true
			}
		}
		_ = rc.Close()
	}
	return files
}

// killPeerProcess SIGKILLs the peer process of a peer Pod, found on the host by the
// KUBECC_PEER_POD in its environment (it is PID 1 of its container: its run hooks die
// with it, so nothing of kubecc is left to clean up).
func killPeerProcess(t *testing.T, pod string) {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !strings.Contains("\x00"+string(env)+"\x00", "\x00KUBECC_PEER_POD="+pod+"\x00") {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		if args := strings.Split(string(cmd), "\x00"); len(args) < 2 || filepath.Base(args[0]) != "peer" || args[1] != "node" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill peer pid %d: %v", pid, err)
		}
		t.Logf("SIGKILL to the peer process (pid %d on the host) of %s", pid, pod)
		return
	}
	t.Fatalf("no peer process of %s on this machine", pod)
}

func TestInCluster(t *testing.T) {
	h := newInClusterHarness(t)
	ctx := context.Background()
	// Names unique per run, so the suite runs again on the same channel.
	run := time.Now().Unix() % 1000000
	ccName := fmt.Sprintf("incc%d", run)
	label := func(n int) string { return fmt.Sprintf("incc%d_%d", run, n) }
	var id string
	peer := h.peerPod(t, "", 60*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			p, err := h.kube.CoreV1().Pods(h.ns).List(ctx, metav1.ListOptions{LabelSelector: h.vars["INCLUSTER_PEER_SELECTOR"]})
			if err == nil {
				for _, pp := range p.Items {
					var lines []string
					for _, l := range strings.Split(h.peerPodLog(t, pp.Name), "\n") {
						if strings.Contains(l, "externalbuilder") || strings.Contains(l, "kubecc") || strings.Contains(l, "Error") {
							lines = append(lines, l)
						}
					}
					if len(lines) > 80 {
						lines = lines[len(lines)-80:]
					}
					t.Logf("--- peer Pod %s (kubecc and error lines):\n%s", pp.Name, strings.Join(lines, "\n"))
				}
			}
			for _, p := range h.pods(t, "") {
				t.Logf("chaincode pod %s phase %s deleting=%v package=%s owners=%v", p.Name, p.Status.Phase, p.DeletionTimestamp != nil, p.Annotations["kubecc.io/package-id"], p.OwnerReferences)
			}
		}
	})
	// From here on, every chaincode object must come from the peer's service account.
	creator := h.requireCreator(t)

	t.Run("1 image package installs in the peer Pod; the chaincode Pod is owned by it and dials its Pod IP", func(t *testing.T) {
		start := time.Now()
		pkg := filepath.Join(t.TempDir(), label(1)+".tgz")
		cliID := h.kubeccCLI(t, "package", "--label", label(1), "-o", pkg, exampleCC)
		id = h.install(t, pkg)
		if id != cliID {
			t.Fatalf("kubecc printed package ID %s, the in-cluster peer computed %s", cliID, id)
		}
		h.deploy(t, ccName, id, 1)
		pod := h.runningPod(t, id, 60*time.Second)
		t.Logf("package+install+approve+commit to a running chaincode Pod in %s", time.Since(start).Round(time.Millisecond))
		if !ownerIs(pod.OwnerReferences, peer) {
			t.Errorf("chaincode Pod %s owners %v, want the peer Pod %s (%s)", pod.Name, pod.OwnerReferences, peer.Name, peer.UID)
		}
		want := peer.Status.PodIP + ":" + strings.TrimPrefix(h.vars["PEER_CHAINCODE_ADDRESS"], peer.Status.PodIP+":")
		if want != h.vars["PEER_CHAINCODE_ADDRESS"] {
			t.Errorf("peer Pod IP %s, chaincode address %s", peer.Status.PodIP, h.vars["PEER_CHAINCODE_ADDRESS"])
		}
		c := pod.Spec.Containers[0]
		var env string
		for _, e := range c.Env {
			if e.Name == "CORE_PEER_ADDRESS" {
				env = e.Value
			}
		}
		if env != want {
			t.Errorf("CORE_PEER_ADDRESS=%q, want the peer Pod's %s", env, want)
		}
		hasArg := false
		for _, a := range append(append([]string{}, c.Command...), c.Args...) {
			hasArg = hasArg || a == "-peer.address="+want
		}
		if !hasArg {
			t.Errorf("chaincode args %v, want -peer.address=%s", c.Args, want)
		}
		for _, s := range h.secrets(t, id) {
			if !ownerIs(s.OwnerReferences, pod) {
				t.Errorf("Secret %s owners %v, want the chaincode Pod", s.Name, s.OwnerReferences)
			}
		}
		h.mustInvoke(t, ccName, "put", "a", "1")
		h.mustQuery(t, ccName, "1", "get", "a")
		t.Logf("chaincode Pod %s owned by %s, dials %s", pod.Name, peer.Name, want)
	})

	t.Run("2 the hooks run as the peer's service account with the shipped Role, no kubeconfig", func(t *testing.T) {
		need(t, id)
		// The chaincode Pod and its Secret exist while the creator policy is in force.
		if len(h.pods(t, id)) == 0 || len(h.secrets(t, id)) == 0 {
			t.Fatal("no chaincode Pod or Secret")
		}
		t.Logf("chaincode Pod and Secret admitted under %s: created by %s", creatorPolicy, creator)
		p, err := h.kube.CoreV1().Pods(h.ns).Get(ctx, peer.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.ServiceAccountName != "fabric-peer" {
			t.Errorf("peer Pod service account %q", p.Spec.ServiceAccountName)
		}
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			for _, e := range c.Env {
				if e.Name == "KUBECONFIG" || strings.Contains(strings.ToLower(e.Value), "kubeconfig") {
					t.Errorf("container %s env %s=%s", c.Name, e.Name, e.Value)
				}
			}
			for _, m := range c.VolumeMounts {
				if strings.Contains(strings.ToLower(m.Name+m.MountPath), "kube") && !strings.HasPrefix(m.MountPath, "/var/run/secrets/kubernetes.io/serviceaccount") && m.Name != "kubecc-bin" && m.Name != "kubecc-config" {
					t.Errorf("container %s mounts %s at %s", c.Name, m.Name, m.MountPath)
				}
			}
		}
		tokenVolume := false
		for _, v := range p.Spec.Volumes {
			if strings.Contains(strings.ToLower(v.Name), "kubeconfig") {
				t.Errorf("peer Pod volume %s", v.Name)
			}
			tokenVolume = tokenVolume || strings.HasPrefix(v.Name, "kube-api-access-")
		}
		if !tokenVolume {
			t.Error("the peer Pod has no service-account token volume")
		}
		cm, err := h.kube.CoreV1().ConfigMaps(h.ns).Get(ctx, "kubecc-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(cm.Data["config.yaml"], "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "kubeconfig:") {
				t.Errorf("the builder config names a kubeconfig: %s", line)
			}
		}
		// The peer image is stock-like: the peer, Fabric's sampleconfig, no shell, no Go,
		// no kubecc, no kubeconfig. kubecc's hooks come from the kit's init container.
		files := h.imageFiles(t, h.vars["PEER_IMAGE"])
		if !files["/usr/local/bin/peer"] || !files["/etc/hyperledger/fabric/core.yaml"] {
			t.Errorf("peer image lacks /usr/local/bin/peer or core.yaml: %d files", len(files))
		}
		for f := range files {
			base := path.Base(f)
			switch {
			case base == "sh" || base == "bash" || base == "busybox" || base == "go" || base == "gofmt",
				base == "kubecc" || base == "detect" || base == "build" || base == "release" || base == "run" || base == "run-serverless",
				strings.Contains(f, "kubeconfig") || strings.Contains(f, "/.kube/"):
				t.Errorf("peer image has %s", f)
			}
		}
		// Nor does kubecc's own image, the hooks' only way in, carry a kubeconfig.
		for f := range h.imageFiles(t, h.vars["KUBECC_IMAGE"]) {
			if strings.Contains(f, "kubeconfig") || strings.Contains(f, "/.kube/") {
				t.Errorf("kubecc image has %s", f)
			}
		}
		var initImage string
		for _, c := range p.Spec.InitContainers {
			initImage = c.Image
		}
		if initImage != h.vars["KUBECC_IMAGE"] || p.Spec.Containers[0].Image != h.vars["PEER_IMAGE"] {
			t.Errorf("peer Pod runs %s with init image %s; want %s and %s", p.Spec.Containers[0].Image, initImage, h.vars["PEER_IMAGE"], h.vars["KUBECC_IMAGE"])
		}
		// The admin may not create chaincode objects now: the policy is what proved the creator.
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-admin-", Namespace: h.ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubecc"}}}
		if _, err := h.kube.CoreV1().Secrets(h.ns).Create(ctx, s, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
			t.Error("the cluster admin could create a kubecc Secret: the creator policy is not enforced")
		}
	})

	t.Run("3 peer Pod crash: the garbage collector removes its chaincode; the new peer Pod relaunches it with the old data", func(t *testing.T) {
		need(t, id)
		old := h.peerPod(t, "", 30*time.Second)
		cc := h.runningPod(t, id, 30*time.Second)
		if !ownerIs(cc.OwnerReferences, old) {
			t.Fatalf("chaincode Pod %s is not owned by the peer Pod %s", cc.Name, old.Name)
		}
		before := h.ownedBy(t, string(old.UID))
		// A crash: the peer process dies with its run hooks (nothing of kubecc can clean
		// up), and the Pod is gone at once.
		killPeerProcess(t, old.Name)
		zero := int64(0)
		start := time.Now()
		if err := h.kube.CoreV1().Pods(h.ns).Delete(ctx, old.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 60*time.Second, "the old peer Pod's chaincode Pods and Secrets deleted", func() bool {
			return len(h.ownedBy(t, string(old.UID))) == 0
		})
		t.Logf("%v gone %s after the peer Pod was force-deleted", before, took.Round(time.Millisecond))
		np := h.peerPod(t, old.Name, 120*time.Second)
		t.Logf("new peer Pod %s ready %s after the crash", np.Name, time.Since(start).Round(time.Millisecond))
		qstart := time.Now()
		h.mustQuery(t, ccName, "1", "get", "a")
		t.Logf("first query after the crash (relaunch) %s", time.Since(qstart).Round(time.Millisecond))
		pod := h.runningPod(t, id, 30*time.Second)
		if !ownerIs(pod.OwnerReferences, np) {
			t.Errorf("relaunched chaincode Pod %s owners %v, want the new peer Pod %s", pod.Name, pod.OwnerReferences, np.Name)
		}
		h.mustInvoke(t, ccName, "put", "a", "2")
		h.mustQuery(t, ccName, "2", "get", "a")
	})

	t.Run("4 rolling restart of the peer Deployment: nothing of the old peer Pod is left, the chaincode serves", func(t *testing.T) {
		need(t, id)
		old := h.peerPod(t, "", 30*time.Second)
		h.runningPod(t, id, 30*time.Second)
		start := time.Now()
		if out, err := h.run(ctx, h.vars["KUBECTL"], "-n", h.ns, "rollout", "restart", "deployment/"+h.vars["INCLUSTER_PEER_DEPLOYMENT"]); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		took := eventually(t, 60*time.Second, "no chaincode object of the old peer Pod", func() bool {
			return len(h.ownedBy(t, string(old.UID))) == 0
		})
		t.Logf("old peer Pod's chaincode objects gone %s after the restart", took.Round(time.Millisecond))
		np := h.peerPod(t, old.Name, 120*time.Second)
		t.Logf("new peer Pod %s ready %s after the restart", np.Name, time.Since(start).Round(time.Millisecond))
		h.mustQuery(t, ccName, "2", "get", "a")
		h.mustInvoke(t, ccName, "put", "a", "3")
		h.mustQuery(t, ccName, "3", "get", "a")
		if pod := h.runningPod(t, id, 30*time.Second); !ownerIs(pod.OwnerReferences, np) {
			t.Errorf("chaincode Pod %s owners %v, want %s", pod.Name, pod.OwnerReferences, np.Name)
		}
		if since := time.Since(start); since < 60*time.Second {
			time.Sleep(60*time.Second - since)
		}
		if left := h.ownedBy(t, string(old.UID)); len(left) > 0 {
			t.Errorf("60 s after the restart, the old peer Pod still owns %v", left)
		}
	})

	t.Run("5 serverless chaincode from the in-cluster peer scales to zero and wakes", func(t *testing.T) {
		name := fmt.Sprintf("incjob%d", run)
		pkg := filepath.Join(t.TempDir(), name+".tgz")
		jid := h.kubeccCLI(t, "package", "--label", name+"_1", "--launch", "job", "--idle-timeout", "3s", "-o", pkg, exampleCC)
		h.install(t, pkg)
		h.deploy(t, name, jid, 1)
		h.mustInvoke(t, name, "put", "k", "v1")
		h.mustQuery(t, name, "v1", "get", "k")
		last := time.Now()
		time.Sleep(3 * time.Second)
		eventually(t, 10*time.Second, "no pod, job or secret after the idle timeout", func() bool { return h.nothingLeft(t, jid) })
		t.Logf("scaled to zero %s after the last call (idle timeout 3s)", time.Since(last).Round(time.Millisecond))
		start := time.Now()
		h.mustQuery(t, name, "v1", "get", "k")
		t.Logf("cold query %s (peer CLI)", time.Since(start).Round(time.Millisecond))
		h.mustInvoke(t, name, "put", "k", "v2")
		h.mustQuery(t, name, "v2", "get", "k")
	})

	t.Run("6 upgrade from the in-cluster peer: the old chaincode Pod is gone within 10 s", func(t *testing.T) {
		need(t, id)
		old := h.runningPod(t, id, 30*time.Second)
		pkg := filepath.Join(t.TempDir(), label(2)+".tgz")
		newID := h.kubeccCLI(t, "package", "--label", label(2), "-o", pkg, "--image", old.Spec.Containers[0].Image)
		if got := h.install(t, pkg); got != newID {
			t.Fatalf("package ID %s, peer says %s", newID, got)
		}
		h.deploy(t, ccName, newID, 2)
		took := eventually(t, 10*time.Second, "old chaincode Pod and Secret deleted", func() bool {
			return len(h.pods(t, id)) == 0 && len(h.secrets(t, id)) == 0
		})
		t.Logf("old chaincode gone %s after commit", took.Round(time.Millisecond))
		h.mustQuery(t, ccName, "3", "get", "a")
		h.runningPod(t, newID, 30*time.Second)
		id = newID
	})
}
