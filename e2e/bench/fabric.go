package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// network is the running harness as the benchmarks drive it: the peer CLI for the
// lifecycle (it is what operators use) and the Fabric Gateway client for calls, whose
// timings are not dominated by a CLI's start-up.
type network struct {
	root string
	repo string
	vars map[string]string
	env  []string
	kube kubernetes.Interface
	ns   string
	gw   *client.Gateway
	conn *grpc.ClientConn
}

func e2eRoot() string {
	if r := os.Getenv("KUBECC_E2E_ROOT"); r != "" {
		return r
	}
	return "/tmp/kubecc-e2e"
}

// harnessVars reads the plain assignments of the harness's env files (e2e/up.sh writes
// them), such as builds.env, without a shell.
func harnessVars(files ...string) (map[string]string, error) {
	b := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(e2eRoot(), f))
		if err != nil {
			return nil, fmt.Errorf("%w (bring the harness up with e2e/up.sh)", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && !strings.HasPrefix(k, "#") {
				b[k] = strings.Trim(v, `"`)
			}
		}
	}
	return b, nil
}

func openNetwork(repo string) (*network, error) {
	n := &network{root: e2eRoot(), repo: repo, vars: map[string]string{}, ns: "kubecc"}
	for _, f := range []string{"cluster/env", "fabric/env"} {
		out, err := exec.Command("bash", "-c", `set -a; . "$1" >/dev/null; env -0`, "env", filepath.Join(n.root, f)).Output()
		if err != nil {
			return nil, fmt.Errorf("harness env %s (run e2e/up.sh): %w", f, err)
		}
		for _, kv := range bytes.Split(out, []byte{0}) {
			if k, v, ok := strings.Cut(string(kv), "="); ok {
				n.vars[k] = v
			}
		}
	}
	for k, v := range n.vars {
		n.env = append(n.env, k+"="+v)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", n.vars["KUBECONFIG"])
	if err != nil {
		return nil, err
	}
	if n.kube, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, err
	}
	return n, n.connectGateway()
}

func (n *network) close() {
	if n.gw != nil {
		_ = n.gw.Close()
	}
	if n.conn != nil {
		_ = n.conn.Close()
	}
}

func (n *network) connectGateway() error {
	msp := n.vars["CORE_PEER_MSPCONFIGPATH"]
	certs, _ := filepath.Glob(filepath.Join(msp, "signcerts", "*.pem"))
	keys, _ := filepath.Glob(filepath.Join(msp, "keystore", "*"))
	if len(certs) == 0 || len(keys) == 0 {
		return fmt.Errorf("no admin certificate or key under %s", msp)
	}
	certPEM, err := os.ReadFile(certs[0])
	if err != nil {
		return err
	}
	cert, err := identity.CertificateFromPEM(certPEM)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(keys[0])
	if err != nil {
		return err
	}
	key, err := identity.PrivateKeyFromPEM(keyPEM)
	if err != nil {
		return err
	}
	id, err := identity.NewX509Identity(n.vars["CORE_PEER_LOCALMSPID"], cert)
	if err != nil {
		return err
	}
	sign, err := identity.NewPrivateKeySign(key)
	if err != nil {
		return err
	}
	creds := insecure.NewCredentials()
	if n.vars["CORE_PEER_TLS_ENABLED"] == "true" {
		root, err := os.ReadFile(n.vars["CORE_PEER_TLS_ROOTCERT_FILE"])
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(root)
		creds = credentials.NewClientTLSFromCert(pool, "localhost")
	}
	if n.conn, err = grpc.NewClient(n.vars["CORE_PEER_ADDRESS"], grpc.WithTransportCredentials(creds)); err != nil {
		return err
	}
	n.gw, err = client.Connect(id, client.WithSign(sign), client.WithClientConnection(n.conn),
		client.WithEvaluateTimeout(2*time.Minute), client.WithEndorseTimeout(2*time.Minute),
		client.WithSubmitTimeout(time.Minute), client.WithCommitStatusTimeout(2*time.Minute))
	return err
}

func (n *network) contract(name string) *client.Contract {
	return n.gw.GetNetwork(n.vars["CHANNEL"]).GetContract(name)
}

func (n *network) run(ctx context.Context, name string, args ...string) (string, error) {
	path := name
	for _, dir := range filepath.SplitList(n.vars["PATH"]) {
		if p := filepath.Join(dir, name); fileExists(p) {
			path = p
			break
		}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env, cmd.Dir = n.env, n.repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func fileExists(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular()
}

var packageIDLine = regexp.MustCompile(`Chaincode code package identifier: (\S+)`)

// deploy installs a package file and approves and commits it as name, sequence 1.
func (n *network) deploy(ctx context.Context, name, pkg string) (string, error) {
	id, err := n.install(ctx, pkg)
	if err != nil {
		return "", err
	}
	return id, n.approveCommit(ctx, name, id)
}

// install installs a package file (again: no error) and returns its package ID.
func (n *network) install(ctx context.Context, pkg string) (string, error) {
	out, err := n.run(ctx, "peer", "lifecycle", "chaincode", "install", pkg)
	if err != nil && !strings.Contains(out, "already successfully installed") {
		return "", err
	}
	if m := packageIDLine.FindStringSubmatch(out); m != nil {
		return m[1], nil
	}
	out, err = n.run(ctx, "peer", "lifecycle", "chaincode", "calculatepackageid", pkg)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// approveCommit approves and commits packageID as name, sequence 1.
func (n *network) approveCommit(ctx context.Context, name, packageID string) error {
	orderer := []string{"-o", n.vars["ORDERER_ADDRESS"]}
	if n.vars["ORDERER_TLS_ENABLED"] == "true" {
		orderer = append(orderer, "--tls", "--cafile", n.vars["ORDERER_CA"])
	}
	peers := []string{"--peerAddresses", n.vars["CORE_PEER_ADDRESS"]}
	if n.vars["CORE_PEER_TLS_ENABLED"] == "true" {
		peers = append(peers, "--tlsRootCertFiles", n.vars["CORE_PEER_TLS_ROOTCERT_FILE"])
	}
	common := []string{"--channelID", n.vars["CHANNEL"], "--name", name, "--version", "1", "--sequence", "1"}
	args := append(append([]string{"lifecycle", "chaincode", "approveformyorg"}, orderer...), append(common, "--package-id", packageID, "--waitForEvent")...)
	if _, err := n.run(ctx, "peer", args...); err != nil {
		return err
	}
	args = append(append(append([]string{"lifecycle", "chaincode", "commit"}, orderer...), peers...), common...)
	_, err := n.run(ctx, "peer", args...)
	return err
}

// kubeccPackage writes an image package of the example Go chaincode with bin/kubecc.
func (n *network) kubeccPackage(ctx context.Context, dir, label string, extra ...string) (string, error) {
	return n.kubeccPackageOf(ctx, "examples/chaincode/go", nil, dir, label, extra...)
}

// kubeccPackageOf writes an image package of the chaincode in src (a folder of the
// repository; "" when extra names an --image) with bin/kubecc, whose environment gets
// env on top of the harness registry's settings.
func (n *network) kubeccPackageOf(ctx context.Context, src string, env []string, dir, label string, extra ...string) (string, error) {
	pkg := filepath.Join(dir, label+".tgz")
	args := append([]string{"package", "--label", label, "-o", pkg}, extra...)
	if src != "" {
		args = append(args, src)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(n.repo, "bin/kubecc"), args...)
	cmd.Dir = n.repo
	cmd.Env = append(append(os.Environ(), "KUBECC_REGISTRY="+n.vars["REGISTRY"]+"/kubecc", "KUBECC_REGISTRY_INSECURE=true"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("kubecc package: %w\n%s", err, out)
	}
	return pkg, nil
}

// chaincodePods counts the pods of a package that have not been deleted.
func (n *network) chaincodePods(ctx context.Context, packageID string) (int, error) {
	list, err := n.kube.CoreV1().Pods(n.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubecc"})
	if err != nil {
		return 0, err
	}
	c := 0
	for _, p := range list.Items {
		if p.Annotations["kubecc.io/package-id"] == packageID && p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			c++
		}
	}
	return c, nil
}

// waitNoPods waits until a serverless chaincode has scaled to zero.
func (n *network) waitNoPods(ctx context.Context, packageID string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := n.chaincodePods(ctx, packageID)
		if err != nil {
			return err
		}
		if c == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s still has pods after %s", packageID, timeout)
}
