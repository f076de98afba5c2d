//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/image"
)

const exampleCC = "examples/chaincode/go"

// kubeccCLI runs bin/kubecc with the harness's registry settings and returns stdout.
func (h *harness) kubeccCLI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := execCommand(ctx, filepath.Join(h.repo, "bin/kubecc"), args...)
	cmd.Dir = h.repo
	cmd.Env = append(os.Environ(), "KUBECC_REGISTRY="+h.vars["REGISTRY"]+"/kubecc", "KUBECC_REGISTRY_INSECURE=true")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubecc %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// goPackage packages the example chaincode with the stock peer CLI.
func (h *harness) goPackage(t *testing.T, label string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), label+".tgz")
	h.peer(t, "lifecycle", "chaincode", "package", out, "--path", filepath.Join(h.repo, exampleCC), "--lang", "golang", "--label", label)
	return out
}

func TestE2E(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var goID, imgID string
	t.Cleanup(func() {
		if t.Failed() {
			h.dumpDiagnostics(t)
		}
	})

	t.Run("1 Go source package builds, launches as a pod and serves", func(t *testing.T) {
		start := time.Now()
		goID = h.install(t, h.goPackage(t, "gocc_1"))
		t.Logf("package+install (build hook) %s", time.Since(start).Round(time.Millisecond))
		ref, err := chaincode.ParseImageRef("image.json", []byte(h.buildOutput(t, goID)))
		if err != nil {
			t.Fatal(err)
		}
		if desc, err := h.registry.Head(ctx, ref.Ref()); err != nil || desc == nil {
			t.Fatalf("image %s not in the registry: %v", ref.Ref(), err)
		}
		// prepull is on in the harness: the node has the image before anything runs it.
		h.assertImageOnNode(t, ref.Ref())
		h.deploy(t, "gocc", goID, 1)
		pod := h.runningPod(t, goID, 60*time.Second)
		if pod.Labels["app.kubernetes.io/managed-by"] != "kubecc" || pod.Labels["kubecc.io/chaincode"] != "gocc_1" || pod.Labels["kubecc.io/package-hash"] == "" || pod.Labels["kubecc.io/peer"] == "" {
			t.Errorf("pod labels %v", pod.Labels)
		}
		if c := pod.Spec.Containers[0]; c.Image != ref.Ref() {
			t.Errorf("pod runs %s, build output says %s", c.Image, ref.Ref())
		}
		h.mustInvoke(t, "gocc", "put", "a", "1")
		h.mustQuery(t, "gocc", "1", "get", "a")
		// run handed the resident launch to its lean build, under the same pid.
		if exe := h.runExe(t, goID); filepath.Base(exe) != "run" {
			t.Errorf("the resident chaincode's run process is %s, want run (no relay)", exe)
		}
	})

	t.Run("2 image package from kubecc package installs with the same package ID", func(t *testing.T) {
		pkg := filepath.Join(t.TempDir(), "imgcc_1.tgz")
		cliID := h.kubeccCLI(t, "package", "--label", "imgcc_1", "-o", pkg, exampleCC)
		imgID = h.install(t, pkg)
		if cliID != imgID {
			t.Fatalf("kubecc printed package ID %s, the peer computed %s", cliID, imgID)
		}
		h.deploy(t, "imgcc", imgID, 1)
		h.runningPod(t, imgID, 60*time.Second)
		h.mustInvoke(t, "imgcc", "put", "b", "2")
		h.mustQuery(t, "imgcc", "2", "get", "b")
	})

	t.Run("3 deleted chaincode pod is relaunched by the next invoke", func(t *testing.T) {
		need(t, goID)
		old := h.runningPod(t, goID, 30*time.Second)
		zero := int64(0)
		if err := h.kube.CoreV1().Pods(h.ns).Delete(ctx, old.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "old pod gone", func() bool {
			for _, p := range h.pods(t, goID) {
				if p.Name == old.Name {
					return false
				}
			}
			return true
		})
		// The peer notices the closed stream; the next invoke calls run again.
		var err error
		eventually(t, 60*time.Second, "invoke after pod deletion", func() bool {
			_, err = h.invoke("gocc", "put", "a", "3")
			return err == nil
		})
		h.mustQuery(t, "gocc", "3", "get", "a")
		if p := h.runningPod(t, goID, 30*time.Second); p.Name == old.Name {
			t.Fatalf("pod %s was not replaced", p.Name)
		}
	})

	t.Run("4 upgrade removes the old pod and secret within 10 s", func(t *testing.T) {
		need(t, imgID)
		old := h.runningPod(t, imgID, 30*time.Second)
		ref := old.Spec.Containers[0].Image
		pkg := filepath.Join(t.TempDir(), "imgcc_2.tgz")
		newID := h.kubeccCLI(t, "package", "--label", "imgcc_2", "-o", pkg, "--image", ref)
		if got := h.install(t, pkg); got != newID {
			t.Fatalf("package ID %s, peer says %s", newID, got)
		}
		h.deploy(t, "imgcc", newID, 2)
		took := eventually(t, 10*time.Second, "old pod and secret deleted", func() bool {
			return len(h.pods(t, imgID)) == 0 && len(h.secrets(t, imgID)) == 0
		})
		t.Logf("old chaincode gone %s after commit", took.Round(time.Millisecond))
		h.mustQuery(t, "imgcc", "2", "get", "b")
		h.runningPod(t, newID, 30*time.Second)
		imgID = newID
	})

	t.Run("7 unpullable image fails the launch fast with the pull error in the peer log", func(t *testing.T) {
		// A fresh image that exists when the build hook checks it, then is deleted from
		// the registry: the node cannot have it and cannot pull it.
		base, _ := image.Base("amd64")
		junk := make([]byte, 64)
		_, _ = rand.Read(junk)
		img, err := image.Assemble(base, image.Spec{Layers: []image.Contents{image.Binary(junk)}, Entrypoint: []string{image.BinaryPath}, User: image.User, Arch: "amd64"})
		if err != nil {
			t.Fatal(err)
		}
		tag := h.vars["REGISTRY"] + "/kubecc/unpullable:e2e"
		digest, err := h.registry.Push(ctx, tag, img)
		if err != nil {
			t.Fatal(err)
		}
		pkg := filepath.Join(t.TempDir(), "broken.tgz")
		id := h.kubeccCLI(t, "package", "--label", "broken_1", "-o", pkg, "--image", tag)
		h.install(t, pkg)
		byDigest, _ := h.registry.ParseRef(h.vars["REGISTRY"] + "/kubecc/unpullable@" + digest.String())
		if err := remote.Delete(byDigest); err != nil {
			t.Fatalf("delete manifest: %v", err)
		}
		// The build hook pre-pulled it onto the node: remove it there too, as if the
		// node were new.
		if out, err := h.run(ctx, filepath.Join(h.root, "cluster/bin/ctr"), "images", "rm", "--sync", byDigest.String()); err != nil {
			t.Fatalf("remove the image from the node: %v\n%s", err, out)
		}
		h.deploy(t, "broken", id, 1)
		start := time.Now()
		out, err := h.invoke("broken", "ping")
		took := time.Since(start)
		if err == nil {
			t.Fatalf("invoke of an unpullable chaincode succeeded:\n%s", out)
		}
		t.Logf("invoke failed after %s", took.Round(time.Millisecond))
		if took > 15*time.Second {
			t.Errorf("launch failure took %s, want under 15 s", took)
		}
		log := h.peerLog(t)
		if grepCount(log, "ErrImagePull") == 0 && grepCount(log, "ImagePullBackOff") == 0 {
			t.Error("the peer log does not show the pull error")
		}
		eventually(t, 10*time.Second, "nothing left of the failed launch", func() bool {
			return len(h.pods(t, id)) == 0 && len(h.secrets(t, id)) == 0
		})
	})

	t.Run("5 peer SIGTERM removes its pods and secrets, restart serves old data", func(t *testing.T) {
		need(t, goID)
		h.runningPod(t, goID, 30*time.Second)
		h.peerCtl(t, "stop")
		took := eventually(t, 10*time.Second, "all chaincode pods and secrets gone", func() bool {
			return len(h.pods(t, "")) == 0 && len(h.secrets(t, "")) == 0
		})
		t.Logf("pods and secrets gone %s after the peer stopped", took.Round(time.Millisecond))
		h.peerCtl(t, "start")
		h.mustQuery(t, "gocc", "3", "get", "a")
		h.mustQuery(t, "imgcc", "2", "get", "b")
		h.runningPod(t, goID, 30*time.Second)
	})

	t.Run("6 peer SIGKILL leftovers are cleaned up on restart", func(t *testing.T) {
		need(t, goID)
		before := h.runningPod(t, goID, 30*time.Second)
		h.peerCtl(t, "kill")
		h.peerCtl(t, "start")
		h.mustQuery(t, "gocc", "3", "get", "a")
		eventually(t, 10*time.Second, "exactly one new pod, the old one gone", func() bool {
			pods := h.pods(t, goID)
			return len(pods) == 1 && pods[0].Name != before.Name && len(h.secrets(t, goID)) == 1
		})
	})

	t.Run("9 an API server restart does not take running chaincode down", func(t *testing.T) {
		need(t, goID)
		before := h.runningPod(t, goID, 30*time.Second)
		launches := strings.Count(h.peerLog(t), "created for "+goID)
		putLine := "chaincode " + before.Name + ": put a"
		// The last log line before the break: a resumed stream must not repeat it.
		h.mustInvoke(t, "gocc", "put", "a", "3")
		eventually(t, 10*time.Second, "the chaincode's log line of a put in the peer log", func() bool {
			return strings.Contains(h.peerLog(t), putLine)
		})
		puts := strings.Count(h.peerLog(t), putLine)
		// run's pod watch breaks with the API server and cannot reconnect for 5 s.
		if out, err := h.run(ctx, "bash", filepath.Join(h.repo, "e2e/cluster/restart-apiserver.sh"), "5"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		h.mustInvoke(t, "gocc", "put", "a", "4")
		h.mustQuery(t, "gocc", "4", "get", "a")
		// run resumed the chaincode's log stream, which the restart broke.
		eventually(t, 10*time.Second, "the chaincode's log line of that put in the peer log", func() bool {
			return strings.Count(h.peerLog(t), putLine) == puts+1
		})
		if pods := h.pods(t, goID); len(pods) != 1 || pods[0].UID != before.UID {
			t.Fatalf("chaincode pod %s was replaced: %d pods now", before.Name, len(pods))
		}
		log := h.peerLog(t)
		if got := strings.Count(log, "created for "+goID); got != launches {
			t.Fatalf("the chaincode was launched %d more times", got-launches)
		}
		if !strings.Contains(log, "watch pods of "+before.Name) {
			t.Fatal("run logged no watch retry: the restart did not reach its watch")
		}
		// And run still watches: a pod that dies now makes it exit, and the next
		// invoke relaunches the chaincode.
		zero := int64(0)
		if err := h.kube.CoreV1().Pods(h.ns).Delete(ctx, before.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		// The old container may answer an invoke or two while the kubelet kills it.
		eventually(t, 60*time.Second, "an invoke served by a new pod", func() bool {
			if _, err := h.invoke("gocc", "put", "a", "3"); err != nil {
				return false
			}
			for _, p := range h.pods(t, goID) {
				if p.Name != before.Name && p.Status.Phase == corev1.PodRunning {
					return true
				}
			}
			return false
		})
	})

	t.Run("8 TLS off on the peer", func(t *testing.T) {
		if _, err := h.run(ctx, "bash", filepath.Join(h.repo, "e2e/fabric/down.sh")); err != nil {
			t.Fatal(err)
		}
		// Keep the TLS network's peer log: up.sh starts a new one.
		_ = os.Rename(filepath.Join(h.root, "logs/peer.log"), filepath.Join(h.root, "logs/peer-tls.log"))
		h.env = append(h.env, "PEER_TLS=false")
		if out, err := h.run(ctx, "bash", filepath.Join(h.repo, "e2e/up.sh")); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		h.reloadEnv(t)
		if h.tls() {
			t.Fatal("the network came back with TLS on")
		}
		id := h.install(t, h.goPackage(t, "gocc_1"))
		h.deploy(t, "gocc", id, 1)
		h.mustInvoke(t, "gocc", "put", "plain", "yes")
		h.mustQuery(t, "gocc", "yes", "get", "plain")
		pod := h.runningPod(t, id, 30*time.Second)
		for _, e := range pod.Spec.Containers[0].Env {
			if e.Name == "CORE_PEER_TLS_ENABLED" && e.Value != "false" {
				t.Errorf("CORE_PEER_TLS_ENABLED=%s", e.Value)
			}
		}
		if n := len(h.secrets(t, id)); n != 0 {
			t.Errorf("%d secrets with TLS off", n)
		}
	})
}

// need skips a scenario whose set-up scenario failed, instead of failing it twice.
func need(t *testing.T, packageID string) {
	t.Helper()
	if packageID == "" {
		t.Skip("an earlier scenario this one builds on failed")
	}
}
