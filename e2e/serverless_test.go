//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// jobs lists the Jobs of a package.
func (h *harness) jobs(t *testing.T, packageID string) int {
	t.Helper()
	list, err := h.kube.BatchV1().Jobs(h.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubecc"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, j := range list.Items {
		if j.Annotations["kubecc.io/package-id"] == packageID {
			n++
		}
	}
	return n
}

// nothingLeft reports whether no pod, job or secret of the package exists.
func (h *harness) nothingLeft(t *testing.T, packageID string) bool {
	return len(h.pods(t, packageID)) == 0 && h.jobs(t, packageID) == 0 && len(h.secrets(t, packageID)) == 0
}

// launches counts the jobs run created for a package, from the peer log.
func (h *harness) launches(t *testing.T, packageID string) int {
	n := 0
	for _, line := range strings.Split(h.peerLog(t), "\n") {
		if strings.Contains(line, "kubecc run: job "+h.ns+"/") && strings.Contains(line, "created for "+packageID) {
			n++
		}
	}
	return n
}

// terminateRun sends SIGTERM to the run process of a package, as the peer does: the
// peer started it with the build output folder, named after the package ID.
func (h *harness) terminateRun(t *testing.T, packageID string) {
	t.Helper()
	out, err := exec.Command("pkill", "-TERM", "-f", "bin/run .*"+strings.ReplaceAll(packageID, ":", "-")).CombinedOutput()
	if err != nil {
		t.Fatalf("pkill: %v %s", err, out)
	}
}

// deployJob packages the example as a serverless image package and commits it.
func (h *harness) deployJob(t *testing.T, name, label, idle string) string {
	t.Helper()
	pkg := filepath.Join(t.TempDir(), label+".tgz")
	id := h.kubeccCLI(t, "package", "--label", label, "--launch", "job", "--idle-timeout", idle, "-o", pkg, exampleCC)
	h.install(t, pkg)
	h.deploy(t, name, id, 1)
	return id
}

func TestServerless(t *testing.T) {
	h := newHarness(t)
	t.Cleanup(func() {
		if t.Failed() {
			h.dumpDiagnostics(t)
		}
	})
	h.requireTLS(t) // serverless is proven with TLS on

	t.Run("1 job-mode chaincode serves, scales to zero after the idle timeout, serves again", func(t *testing.T) {
		id := h.deployJob(t, "sless", "sless_1", "3s")
		h.mustInvoke(t, "sless", "put", "k", "v1")
		h.mustQuery(t, "sless", "v1", "get", "k")
		if exe := h.runExe(t, id); filepath.Base(exe) != "run-serverless" {
			t.Errorf("the serverless chaincode's run process is %s, want run-serverless (with the relay)", exe)
		}
		last := time.Now()
		time.Sleep(3 * time.Second)
		eventually(t, 5*time.Second, "no pod, job or secret after idle timeout + 5 s", func() bool { return h.nothingLeft(t, id) })
		t.Logf("scaled to zero %s after the last call (idle timeout 3s)", time.Since(last).Round(time.Millisecond))
		start := time.Now()
		h.mustQuery(t, "sless", "v1", "get", "k")
		t.Logf("cold query %s (peer CLI)", time.Since(start).Round(time.Millisecond))
	})

	t.Run("2 idle timeout 0: 20 sequential invokes, each its own pod", func(t *testing.T) {
		id := h.deployJob(t, "oneshot", "oneshot_1", "0s")
		before := h.launches(t, id)
		start := time.Now()
		for i := 0; i < 20; i++ {
			h.mustInvoke(t, "oneshot", "put", fmt.Sprintf("k%d", i), fmt.Sprint(i))
		}
		t.Logf("20 start-serve-exit invokes in %s", time.Since(start).Round(time.Millisecond))
		for i := 0; i < 20; i += 7 {
			h.mustQuery(t, "oneshot", fmt.Sprint(i), "get", fmt.Sprintf("k%d", i))
		}
		// The commit launched one pod that served the first invoke; every other invoke
		// needed a launch of its own, and each query one more.
		if got := h.launches(t, id) - before; got < 19 {
			t.Fatalf("%d launches for 20 invokes, want each in its own pod", got)
		}
		eventually(t, 10*time.Second, "nothing left after the last call", func() bool { return h.nothingLeft(t, id) })
	})

	t.Run("3 load with gaps around the idle timeout: idle exits fail no call", func(t *testing.T) {
		const calls = 200
		idle := 400 * time.Millisecond
		id := h.deployJob(t, "gappy", "gappy_1", idle.String())
		before := h.launches(t, id)
		rng := rand.New(rand.NewSource(1))
		failed := 0
		start := time.Now()
		for i := 0; i < calls; i++ {
			// The idle clock starts when the chaincode answers, and commit takes a few
			// hundred ms more: gaps up to one idle timeout make calls land on both sides
			// of the idle exit, and right on it.
			time.Sleep(time.Duration(rng.Int63n(int64(idle))))
			if out, err := h.invoke("gappy", "put", "n", fmt.Sprint(i)); err != nil {
				failed++
				t.Logf("call %d failed: %s", i, lastLine(out))
				if failed > 5 {
					t.Fatalf("%d of %d calls failed; stopping", failed, i+1)
				}
			}
		}
		t.Logf("%d calls with gaps around a %s idle timeout in %s: %d cold starts, %d failed", calls, idle, time.Since(start).Round(time.Second), h.launches(t, id)-before, failed)
		if failed*1000 >= calls {
			t.Fatalf("%d of %d calls failed, want fewer than 1 in 1000", failed, calls)
		}
		h.mustQuery(t, "gappy", fmt.Sprint(calls-1), "get", "n")
	})

	t.Run("4 resident and job chaincode side by side on one peer", func(t *testing.T) {
		resID := h.install(t, h.goPackage(t, "resident_1"))
		h.deploy(t, "resident", resID, 1)
		jobID := h.deployJob(t, "sidejob", "sidejob_1", "30s")
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, name := range []string{"resident", "sidejob"} {
			wg.Add(1)
			go func(name string) {
				defer wg.Done()
				if out, err := h.invoke(name, "put", "side", name); err != nil {
					errs <- fmt.Errorf("%s: %w\n%s", name, err, out)
				}
			}(name)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		h.mustQuery(t, "resident", "resident", "get", "side")
		h.mustQuery(t, "sidejob", "sidejob", "get", "side")
		if p := h.runningPod(t, resID, 30*time.Second); p.Labels["kubecc.io/launch"] != "pod" {
			t.Errorf("resident pod labelled %s", p.Labels["kubecc.io/launch"])
		}
		if h.jobs(t, jobID) != 1 {
			t.Errorf("%d jobs for the serverless chaincode, want 1", h.jobs(t, jobID))
		}
	})

	t.Run("5 SIGTERM to run during a transaction: it finishes or fails cleanly, nothing is left", func(t *testing.T) {
		id := h.deployJob(t, "slow", "slow_1", "60s")
		h.mustInvoke(t, "slow", "ping")
		done := make(chan error, 1)
		go func() {
			_, err := h.invoke("slow", "sleep", "2000")
			done <- err
		}()
		time.Sleep(700 * time.Millisecond)
		h.terminateRun(t, id)
		if err := <-done; err != nil {
			t.Logf("the transaction failed cleanly: %v", err)
		} else {
			t.Log("the transaction finished")
		}
		eventually(t, 10*time.Second, "nothing left after SIGTERM", func() bool { return h.nothingLeft(t, id) })
		// And the chaincode still serves: the peer relaunches it.
		h.mustQuery(t, "slow", "pong", "ping")
	})

	t.Run("6 a call that wakes the chaincode while run cannot reach the API server is served once it can", func(t *testing.T) {
		// run's connection to the API server goes through a proxy that this test can
		// cut, as when the API server run talks to fails over in an HA control plane.
		// (Restarting the harness's only API server stalls the job controller for
		// longer than the peer's execute timeout: that measures the cluster, not kubecc.)
		proxy := h.apiProxy(t)
		id := h.deployJob(t, "wake", "wake_1", "1s")
		h.mustInvoke(t, "wake", "put", "w", "1")
		eventually(t, 15*time.Second, "scaled to zero", func() bool { return h.nothingLeft(t, id) })
		proxy.cut(true)
		served := make(chan error, 1)
		start := time.Now()
		go func() {
			out, err := h.invoke("wake", "put", "w", "2")
			if err != nil {
				err = fmt.Errorf("%w\n%s", err, out)
			}
			served <- err
		}()
		time.Sleep(5 * time.Second)
		proxy.cut(false)
		if err := <-served; err != nil {
			t.Fatalf("the call that waited for the API server failed: %v", err)
		}
		t.Logf("served %s after it was sent, run cut off from the API server for 5 s of that", time.Since(start).Round(time.Millisecond))
		h.mustQuery(t, "wake", "2", "get", "w")
		if !strings.Contains(h.peerLog(t), "warning: create cc-wake-1") {
			t.Fatal("run logged no create retry: the call did not meet the cut")
		}
		// This run talks through the proxy, which ends with the test binary: stop it
		// now, while it can still clean up.
		h.terminateRun(t, id)
		eventually(t, 10*time.Second, "nothing left after SIGTERM", func() bool { return h.nothingLeft(t, id) })
	})
}
