//go:build e2e

// Package e2e drives a stock Fabric peer that uses kubecc as its external builder,
// on a real Kubernetes cluster with a real registry (e2e/up.sh starts them).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubecc/kubecc/pkg/image"
)

// harness is the running network: the admin CLI's environment, the cluster and the registry.
type harness struct {
	root, repo string
	env        []string // environment for the peer CLI and scripts
	vars       map[string]string
	kube       kubernetes.Interface
	ns         string
	registry   *image.Registry
}

func loadEnvFile(path string) (map[string]string, error) {
	out, err := exec.Command("bash", "-c", `set -a; . "$1" >/dev/null; env -0`, "env", path).Output()
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", path, err)
	}
	vars := map[string]string{}
	for _, kv := range bytes.Split(out, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			vars[k] = v
		}
	}
	return vars, nil
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	root := os.Getenv("KUBECC_E2E_ROOT")
	if root == "" {
		root = "/tmp/kubecc-e2e"
	}
	repo, _ := filepath.Abs("..")
	h := &harness{root: root, repo: repo, ns: "kubecc"}
	if ns := os.Getenv("KUBECC_NAMESPACE"); ns != "" {
		h.ns = ns
	}
	h.reloadEnv(t)
	rc, err := clientcmd.BuildConfigFromFlags("", h.vars["KUBECONFIG"])
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	if h.kube, err = kubernetes.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	reg := h.vars["REGISTRY"]
	h.registry = &image.Registry{Insecure: func(host string) bool { return host == reg }}
	return h
}

// reloadEnv reads the env files up.sh wrote (again after the network was recreated).
func (h *harness) reloadEnv(t *testing.T) {
	t.Helper()
	vars := map[string]string{}
	for _, f := range []string{"cluster/env", "fabric/env"} {
		v, err := loadEnvFile(filepath.Join(h.root, f))
		if err != nil {
			t.Fatalf("harness not up (run e2e/up.sh): %v", err)
		}
		for k, val := range v {
			vars[k] = val
		}
	}
	h.vars = vars
	h.env = nil
	for k, v := range vars {
		h.env = append(h.env, k+"="+v)
	}
}

func (h *harness) tls() bool { return h.vars["CORE_PEER_TLS_ENABLED"] == "true" }

// requireTLS recreates the Fabric network with TLS on when it runs with TLS off
// (TestE2E ends on a TLS-off network).
func (h *harness) requireTLS(t *testing.T) {
	t.Helper()
	if h.tls() {
		return
	}
	if _, err := h.run(context.Background(), "bash", filepath.Join(h.repo, "e2e/fabric/down.sh")); err != nil {
		t.Fatal(err)
	}
	if out, err := h.run(context.Background(), "bash", filepath.Join(h.repo, "e2e/up.sh")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	h.reloadEnv(t)
	if !h.tls() {
		t.Fatal("the network came back with TLS off")
	}
}

func (h *harness) ordererArgs() []string {
	args := []string{"-o", h.vars["ORDERER_ADDRESS"]}
	if h.vars["ORDERER_TLS_ENABLED"] == "true" {
		args = append(args, "--tls", "--cafile", h.vars["ORDERER_CA"])
	}
	return args
}

func (h *harness) peerArgs() []string {
	args := []string{"--peerAddresses", h.vars["CORE_PEER_ADDRESS"]}
	if h.tls() {
		args = append(args, "--tlsRootCertFiles", h.vars["CORE_PEER_TLS_ROOTCERT_FILE"])
	}
	return args
}

// run runs a command with the harness environment and returns its combined output.
func (h *harness) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := execCommand(ctx, h.lookPath(name), args...)
	cmd.Env = h.env
	cmd.Dir = h.repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (h *harness) peer(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := h.run(ctx, "peer", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (h *harness) peerCtl(t *testing.T, action string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := h.run(ctx, "bash", filepath.Join(h.repo, "e2e/fabric/peer.sh"), action); err != nil {
		t.Fatal(err)
	}
}

var packageIDLine = regexp.MustCompile(`(?m)Chaincode code package identifier: (\S+)`)

// install installs a package file and returns the package ID the peer reports.
func (h *harness) install(t *testing.T, pkg string) string {
	t.Helper()
	out := h.peer(t, "lifecycle", "chaincode", "install", pkg)
	m := packageIDLine.FindStringSubmatch(out)
	if m == nil {
		// Installed before: the peer says so; ask it for the ID.
		id := strings.TrimSpace(h.peer(t, "lifecycle", "chaincode", "calculatepackageid", pkg))
		if !strings.Contains(out, "already successfully installed") {
			t.Fatalf("install printed no package ID:\n%s", out)
		}
		return id
	}
	return m[1]
}

// deploy approves and commits name at sequence for packageID.
func (h *harness) deploy(t *testing.T, name, packageID string, sequence int) {
	t.Helper()
	seq := fmt.Sprint(sequence)
	common := []string{"--channelID", h.vars["CHANNEL"], "--name", name, "--version", seq, "--sequence", seq}
	h.peer(t, append(append([]string{"lifecycle", "chaincode", "approveformyorg"}, h.ordererArgs()...), append(common, "--package-id", packageID, "--waitForEvent")...)...)
	h.peer(t, append(append(append([]string{"lifecycle", "chaincode", "commit"}, h.ordererArgs()...), h.peerArgs()...), common...)...)
}

func ccArgs(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return `{"Args":[` + strings.Join(q, ",") + `]}`
}

func (h *harness) invoke(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append(append([]string{"chaincode", "invoke"}, h.ordererArgs()...), h.peerArgs()...)
	full = append(full, "-C", h.vars["CHANNEL"], "-n", name, "-c", ccArgs(args...), "--waitForEvent")
	return h.run(ctx, "peer", full...)
}

func (h *harness) query(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := h.run(ctx, "peer", "chaincode", "query", "-C", h.vars["CHANNEL"], "-n", name, "-c", ccArgs(args...))
	return strings.TrimSpace(lastLine(out)), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func (h *harness) mustInvoke(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := h.invoke(name, args...); err != nil {
		t.Fatalf("invoke %s %v: %v\n%s", name, args, err, out)
	}
}

func (h *harness) mustQuery(t *testing.T, name, want string, args ...string) {
	t.Helper()
	got, err := h.query(name, args...)
	if err != nil {
		t.Fatalf("query %s %v: %v", name, args, err)
	}
	if got != want {
		t.Fatalf("query %s %v = %q, want %q", name, args, got, want)
	}
}

// pods lists the chaincode pods of a package (by its package ID annotation).
func (h *harness) pods(t *testing.T, packageID string) []corev1.Pod {
	t.Helper()
	list, err := h.kube.CoreV1().Pods(h.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubecc"})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if packageID == "" || p.Annotations["kubecc.io/package-id"] == packageID {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (h *harness) secrets(t *testing.T, packageID string) []corev1.Secret {
	t.Helper()
	list, err := h.kube.CoreV1().Secrets(h.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubecc"})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Secret
	for _, s := range list.Items {
		if packageID == "" || s.Annotations["kubecc.io/package-id"] == packageID {
			out = append(out, s)
		}
	}
	return out
}

// runningPod waits for exactly one Running pod of the package and returns it.
func (h *harness) runningPod(t *testing.T, packageID string, timeout time.Duration) corev1.Pod {
	t.Helper()
	var last []corev1.Pod
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		last = h.pods(t, packageID)
		if len(last) == 1 && last[0].Status.Phase == corev1.PodRunning && last[0].DeletionTimestamp == nil {
			return last[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no single running pod for %s after %s: %d pods %v", packageID, timeout, len(last), podPhases(last))
	return corev1.Pod{}
}

func podPhases(pods []corev1.Pod) []string {
	var s []string
	for _, p := range pods {
		s = append(s, p.Name+"="+string(p.Status.Phase))
	}
	return s
}

// eventually polls cond until it holds or timeout passes; it returns how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, timeout)
	return 0
}

// peerLogSince returns the peer log written after offset.
func (h *harness) peerLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.root, "logs/peer.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// buildOutput reads the image.json the build hook wrote for a package into the peer's
// durable build folder.
func (h *harness) buildOutput(t *testing.T, packageID string) string {
	t.Helper()
	dir := filepath.Join(h.root, "fabric/peer-data/externalbuilder/builds", strings.ReplaceAll(packageID, ":", "-"), "bld")
	b, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		t.Fatalf("build output of %s: %v", packageID, err)
	}
	return string(b)
}

func grepCount(s, sub string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			n++
		}
	}
	return n
}

func execCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// lookPath finds name on the harness's PATH (exec looks at the test's own PATH).
func (h *harness) lookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	for _, dir := range filepath.SplitList(h.vars["PATH"]) {
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

// dumpDiagnostics logs what kubecc's hooks said in the peer logs and the chaincode
// pods that exist, so that a failure in CI can be read without the machine.
func (h *harness) dumpDiagnostics(t *testing.T) {
	for _, name := range []string{"peer-tls.log", "peer.log"} {
		b, err := os.ReadFile(filepath.Join(h.root, "logs", name))
		if err != nil {
			continue
		}
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "externalbuilder") || strings.Contains(l, "chaincode.launch") || strings.Contains(l, "Error") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		t.Logf("--- %s (kubecc and error lines, last %d):\n%s", name, len(lines), strings.Join(lines, "\n"))
	}
	for _, p := range h.pods(t, "") {
		t.Logf("pod %s phase %s deleting=%v package=%s", p.Name, p.Status.Phase, p.DeletionTimestamp != nil, p.Annotations["kubecc.io/package-id"])
	}
}

// assertImageOnNode starts a pod that may not pull: it only starts if the node already
// has the image.
func (h *harness) assertImageOnNode(t *testing.T, ref string) {
	t.Helper()
	ctx := context.Background()
	yes, uid := true, int64(10001)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-image-check-", Namespace: h.ns},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: new(bool),
			SecurityContext:              &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid},
			Containers:                   []corev1.Container{{Name: "c", Image: ref, ImagePullPolicy: corev1.PullNever, Args: []string{"-h"}}},
		},
	}
	created, err := h.kube.CoreV1().Pods(h.ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	defer func() {
		_ = h.kube.CoreV1().Pods(h.ns).Delete(ctx, created.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}()
	var reason string
	eventually(t, 30*time.Second, "image check pod decided", func() bool {
		p, err := h.kube.CoreV1().Pods(h.ns).Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		st := p.Status.ContainerStatuses[0].State
		switch {
		case st.Running != nil || st.Terminated != nil:
			return true
		case st.Waiting != nil && st.Waiting.Reason != "ContainerCreating":
			reason = st.Waiting.Reason
			return true
		}
		return false
	})
	if reason != "" {
		t.Fatalf("image %s is not on the node: %s", ref, reason)
	}
}

// apiProxy is a TCP proxy in front of the API server that run's kubeconfig points at
// while a test runs; cut(true) drops its connections and refuses new ones.
type apiProxy struct {
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func (p *apiProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			_ = c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

func (p *apiProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

// apiProxy starts the proxy and points the builder's kubeconfig at it until the test
// ends. Only run processes started from now on use it.
func (h *harness) apiProxy(t *testing.T) *apiProxy {
	t.Helper()
	kcfg := filepath.Join(h.root, "builder", "kubeconfig")
	orig, err := os.ReadFile(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`server: "https://([^"]+)"`).FindSubmatch(orig)
	if m == nil {
		t.Fatalf("no server in %s", kcfg)
	}
	upstream := string(m[1])
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &apiProxy{conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := net.Dial("tcp", upstream)
				if err != nil || !p.track(c, u) {
					_ = c.Close()
					if u != nil {
						_ = u.Close()
					}
					return
				}
				go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
				_, _ = io.Copy(c, u)
				_ = c.Close()
			}()
		}
	}()
	// The API server's certificate names 127.0.0.1, whatever the port.
	patched := strings.Replace(string(orig), string(m[0]), `server: "https://`+lis.Addr().String()+`"`, 1)
	if err := os.WriteFile(kcfg, []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	// The proxy stays up: run processes started meanwhile keep using it until they end.
	t.Cleanup(func() { _ = os.WriteFile(kcfg, orig, 0o600) })
	return p
}

// runHookProcs are the /proc folders of the run hooks the peer started for a package
// (found by its build output folder, named after the package ID, in their command
// lines; run-serverless keeps run's argv[0], as run execs it with the same arguments).
func runHookProcs(packageID string) []string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	want := strings.ReplaceAll(packageID, ":", "-")
	var out []string
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if len(args) > 1 && strings.HasSuffix(args[0], "/bin/run") && strings.Contains(args[1], want) {
			out = append(out, d)
		}
	}
	return out
}

// runExe is the executable of the run process the peer started for a package.
func (h *harness) runExe(t *testing.T, packageID string) string {
	t.Helper()
	procs := runHookProcs(packageID)
	if len(procs) == 0 {
		t.Fatalf("no run process for %s", packageID)
	}
	exe, err := os.Readlink(filepath.Join(procs[0], "exe"))
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
