package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() {
	register(Benchmark{ID: "P5", Title: "footprint: RSS of `run` per running chaincode, pods left by an idle serverless chaincode", Run: runP5})
}

// p5IdleTimeout is the serverless chaincode's idle timeout in P5.
const p5IdleTimeout = 3 * time.Second

func runP5(ctx context.Context, env *Env) (string, error) {
	n, err := openNetwork(env.Root)
	if err != nil {
		return "", err
	}
	defer n.close()
	dir, err := os.MkdirTemp("", "kubecc-bench-p5-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	tag := strings.ToLower(env.RunID)

	rName, jName := "p5res"+tag, "p5job"+tag
	deploy := func(name string, extra ...string) (string, error) {
		pkg, err := n.kubeccPackage(ctx, dir, name, extra...)
		if err != nil {
			return "", err
		}
		return n.deploy(ctx, name, pkg)
	}
	rID, err := deploy(rName, "--launch", "pod")
	if err != nil {
		return "", err
	}
	jID, err := deploy(jName, "--launch", "job", "--idle-timeout", p5IdleTimeout.String())
	if err != nil {
		return "", err
	}
	// calls gives a chaincode some traffic: one submit, then queries.
	calls := func(name string) error {
		if _, err := n.contract(name).SubmitTransaction("put", "k", "v"); err != nil {
			return fmt.Errorf("invoke %s: %w", name, err)
		}
		for i := 0; i < 20; i++ {
			if _, err := n.contract(name).EvaluateTransaction("get", "k"); err != nil {
				return fmt.Errorf("query %s: %w", name, err)
			}
		}
		return nil
	}
	// rss reads VmRSS and VmHWM of the one run process of a package.
	rss := func(id string) (float64, float64, error) {
		ps := runProcs(id)
		if len(ps) != 1 {
			return 0, 0, fmt.Errorf("%d run processes for %s, want 1", len(ps), id)
		}
		cur, err := procStatus(ps[0].PID, "VmRSS")
		if err != nil {
			return 0, 0, err
		}
		hwm, err := procStatus(ps[0].PID, "VmHWM")
		return cur, hwm, err
	}

	cycles := env.N
	var resRSS, resHWM, jobWarm, jobIdle, jobHWM, idleAfter, podsLeft, objsLeft Sample
	for i := 0; i < cycles; i++ {
		env.Logf("P5: cycle %d/%d", i+1, cycles)
		if err := calls(rName); err != nil {
			return "", err
		}
		cur, hwm, err := rss(rID)
		if err != nil {
			return "", err
		}
		resRSS, resHWM = append(resRSS, cur), append(resHWM, hwm)

		if err := calls(jName); err != nil {
			return "", err
		}
		last := time.Now()
		if cur, _, err = rss(jID); err != nil {
			return "", err
		}
		jobWarm = append(jobWarm, cur)
		if err := n.waitNoPods(ctx, jID, p5IdleTimeout+60*time.Second); err != nil {
			return "", err
		}
		idleAfter = append(idleAfter, time.Since(last).Seconds())
		time.Sleep(2 * time.Second) // idle for a while: nothing must come back
		c, err := n.chaincodePods(ctx, jID)
		if err != nil {
			return "", err
		}
		podsLeft = append(podsLeft, float64(c))
		objs, err := p5Objects(ctx, n, jID)
		if err != nil {
			return "", err
		}
		objsLeft = append(objsLeft, float64(objs))
		if cur, hwm, err = rss(jID); err != nil {
			return "", err
		}
		jobIdle, jobHWM = append(jobIdle, cur), append(jobHWM, hwm)
	}

	const goal = 20 << 20
	mb := func(v float64) string { return fmt.Sprintf("%.1f MB", v/1e6) }
	var b strings.Builder
	b.WriteString(env.Machine.Markdown(env.Command))
	fmt.Fprintf(&b, "\n%d cycles; figures are median (min–max).\n\n", cycles)
	b.WriteString("| figure | result | goal | result |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| `run` of a resident chaincode (pod mode), VmRSS after 1 invoke + 20 queries | %s (%s) | ≤ 20 MB | %s |\n", resRSS.Format(mb), resRSS.Format(mib), passMiss(resRSS.Max() <= goal))
	fmt.Fprintf(&b, "| `run` of a serverless chaincode (job mode, relay inside), VmRSS while its pod serves | %s (%s) | ≤ 20 MB | %s |\n", jobWarm.Format(mb), jobWarm.Format(mib), passMiss(jobWarm.Max() <= goal))
	fmt.Fprintf(&b, "| the same `run` while the chaincode is idle (scaled to zero) | %s (%s) | ≤ 20 MB | %s |\n", jobIdle.Format(mb), jobIdle.Format(mib), passMiss(jobIdle.Max() <= goal))
	fmt.Fprintf(&b, "| peak RSS (VmHWM) of the resident / serverless `run` | %s / %s | | (info) |\n", resHWM.Format(mb), jobHWM.Format(mb))
	fmt.Fprintf(&b, "| pods of the serverless chaincode when idle (2 s after it scaled to zero) | %s | 0 pods | %s |\n", podsLeft.Format(func(v float64) string { return fmt.Sprintf("%.0f", v) }), passMiss(podsLeft.Max() == 0))
	fmt.Fprintf(&b, "| its Jobs and pods in any state (terminating included) at that time | %s | | (info) |\n", objsLeft.Format(func(v float64) string { return fmt.Sprintf("%.0f", v) }))
	fmt.Fprintf(&b, "| last call → no pod left (idle timeout %s) | %s | | (info) |\n\n", p5IdleTimeout, idleAfter.Format(secs))
	b.WriteString("Setup: `examples/chaincode/go` as two `kubecc package` image packages on the harness peer, one `--launch pod` (resident), one `--launch job --idle-timeout " + p5IdleTimeout.String() + "` (serverless). Each cycle calls both (one submit, 20 evaluates), reads the resident `run`'s memory, reads the serverless `run`'s memory while its pod is up, waits until the serverless chaincode has no pod, waits 2 s more, counts its pods and reads the idle `run`'s memory. ")
	b.WriteString("Sources: VmRSS and VmHWM from `/proc/<pid>/status` of the peer's `run` hook processes (found by their command line: `…/bin/run` with the package ID, ':' replaced by '-', in the build directory argument; exactly one per chaincode); pods from the Kubernetes API (label `app.kubernetes.io/managed-by=kubecc`, annotation `kubecc.io/package-id`), counting pods not being deleted and not finished. MB = 10⁶ bytes, MiB = 2²⁰ bytes; the goal is read as 20 MiB.\n")
	return b.String(), nil
}

// p5Objects counts the kubecc pods of a package in any state, and its Jobs.
func p5Objects(ctx context.Context, n *network, packageID string) (int, error) {
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubecc"}
	pods, err := n.kube.CoreV1().Pods(n.ns).List(ctx, sel)
	if err != nil {
		return 0, err
	}
	c := 0
	for _, p := range pods.Items {
		if p.Annotations["kubecc.io/package-id"] == packageID {
			c++
		}
	}
	jobs, err := n.kube.BatchV1().Jobs(n.ns).List(ctx, sel)
	if err != nil {
		return 0, err
	}
	for _, j := range jobs.Items {
		if j.Annotations["kubecc.io/package-id"] == packageID {
			c++
		}
	}
	return c, nil
}
