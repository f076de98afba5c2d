package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() {
	register(Benchmark{ID: "P2", Title: "resident launch: chaincode stopped → first query served (kubecc pod vs local process)", Run: runP2})
}

// p2Side is one chaincode that P2 (and P7) relaunch.
type p2Side struct {
	what   string
	name   string
	id     string
	pod    bool // a kubecc pod, whose container process is told from run by its environment
	stop   func(ctx context.Context) error
	first  Sample // wall time of the first query after the stop
	launch Sample // the peer's chaincode_launch_duration of that relaunch
	second Sample // the query right after it (chaincode running)
	runAt  Sample // the peer started the run hook, seconds after the query was sent
	ccAt   Sample // the chaincode process started, seconds after the query was sent
	own    Sample // that process started → the peer's launch ended (the chaincode registered)
}

// relaunchRuns is how many relaunches P2 and P7 measure per chaincode.
func relaunchRuns(env *Env) int {
	if env.Quick {
		return 3
	}
	return 10
}

// kubeccPodStop stops a resident kubecc chaincode the way P2 forces a relaunch, and
// waits until the peer can have seen it go.
func kubeccPodStop(n *network, id string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		zero := int64(0)
		list, err := n.kube.CoreV1().Pods(n.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubecc"})
		if err != nil {
			return err
		}
		deleted := 0
		for _, p := range list.Items {
			if p.Annotations["kubecc.io/package-id"] == id && p.DeletionTimestamp == nil {
				if err := n.kube.CoreV1().Pods(n.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
					return err
				}
				deleted++
			}
		}
		if deleted == 0 {
			return fmt.Errorf("no pod of %s to delete", id)
		}
		// The pod object goes at once, and run exits when it sees that; the kubelet
		// kills the container a little later, and only then does the peer see the
		// chaincode's stream close. So wait for the chaincode process itself.
		if !waitProcs(func() []localProc { return envProcs(id) }, 30*time.Second) {
			return fmt.Errorf("chaincode process of %s still there 30 s after its pod was deleted", id)
		}
		if !waitProcs(func() []localProc { return runProcs(id) }, 30*time.Second) {
			return fmt.Errorf("run of %s still there 30 s after its pod was deleted", id)
		}
		return n.waitNoPods(ctx, id, 30*time.Second)
	}
}

// relaunch stops the chaincode, then times the query that makes the peer launch it
// again and the one after it, and reads when its processes started and what the
// peer's launch histogram counted.
func (s *p2Side) relaunch(ctx context.Context, env *Env, n *network, i int) error {
	if err := s.stop(ctx); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond) // let the peer finish deregistering
	before, err := scrapePeer(ctx, n)
	if err != nil {
		return err
	}
	t0 := uptimeNow()
	start := time.Now()
	if _, err := n.contract(s.name).EvaluateTransaction("get", "k"); err != nil {
		return fmt.Errorf("first query of %s after stop %d: %w", s.name, i, err)
	}
	s.first = append(s.first, time.Since(start).Seconds())
	// procbuilder's run script execs the chaincode: one process, started when
	// the peer ran the hook. kubecc's run starts a pod whose container process
	// is the chaincode.
	if v, ok := startedSince(runProcs(s.id), t0); ok {
		s.runAt = append(s.runAt, v)
	} else if v, ok := startedSince(chaincodeProcs(s.id), t0); ok {
		s.runAt = append(s.runAt, v)
	}
	cc, ccOK := startedSince(envProcs(s.id), t0)
	if ccOK && s.pod {
		s.ccAt = append(s.ccAt, cc)
	}
	start = time.Now()
	if _, err := n.contract(s.name).EvaluateTransaction("get", "k"); err != nil {
		return fmt.Errorf("second query of %s: %w", s.name, err)
	}
	s.second = append(s.second, time.Since(start).Seconds())
	after, err := scrapePeer(ctx, n)
	if err != nil {
		return err
	}
	c, mean := histDelta(before, after, "chaincode_launch_duration", label("chaincode", s.id), label("success", "true"))
	if c != 1 {
		env.Logf("%s: %v launches counted by the peer during run %d", s.name, c, i)
		return nil
	}
	s.launch = append(s.launch, mean)
	if ccOK && s.pod {
		s.own = append(s.own, mean-cc)
	}
	return nil
}

func runP2(ctx context.Context, env *Env) (string, error) {
	n, err := openNetwork(env.Root)
	if err != nil {
		return "", err
	}
	defer n.close()
	dir, err := os.MkdirTemp("", "kubecc-bench-p2-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	runs := relaunchRuns(env)
	tag := strings.ToLower(env.RunID)

	kName, kID, bName, bID, err := deployPair(ctx, n, dir, "p2"+tag)
	if err != nil {
		return "", err
	}

	defer stopChaincodes(context.WithoutCancel(ctx), n, kID, bID)
	kube := &p2Side{what: "kubecc, resident pod", name: kName, id: kID, pod: true, stop: kubeccPodStop(n, kID)}
	base := &p2Side{what: "procbuilder, local process", name: bName, id: bID}
	base.stop = func(context.Context) error {
		ps := chaincodeProcs(bID)
		if len(ps) == 0 {
			return fmt.Errorf("no chaincode process of %s to kill", bID)
		}
		killProcs(ps)
		if !waitProcs(func() []localProc { return chaincodeProcs(bID) }, 30*time.Second) {
			return fmt.Errorf("chaincode process of %s still there 30 s after SIGKILL", bID)
		}
		return nil
	}

	env.Logf("P2: %d relaunches each, kubecc and procbuilder alternated", runs)
	for i := 0; i < runs; i++ {
		order := []*p2Side{kube, base}
		if i%2 == 1 {
			order = []*p2Side{base, kube}
		}
		for _, s := range order {
			if err := s.relaunch(ctx, env, n, i); err != nil {
				return "", err
			}
		}
	}
	phases := p2PodPhases(filepath.Join(n.root, "logs", "peer.log"), kID)

	ratio := kube.first.Median() / base.first.Median()
	lratio := kube.launch.Median() / base.launch.Median()
	var b strings.Builder
	b.WriteString(env.Machine.Markdown(env.Command))
	fmt.Fprintf(&b, "\n%d relaunches per side, kubecc and the baseline alternated; figures are median (min–max).\n\n", len(kube.first))
	fmt.Fprintf(&b, "| figure | kubecc (resident pod) | procbuilder (local process, baseline) | ratio kubecc/baseline | goal | result |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| first query after the chaincode was stopped, wall time at the client | %s | %s | %.2f | ratio ≤ 1.5 | %s |\n",
		kube.first.Format(ms), base.first.Format(ms), ratio, passMiss(ratio <= 1.5))
	fmt.Fprintf(&b, "| peer's `chaincode_launch_duration` of that relaunch (run started → chaincode registered) | %s | %s | %.2f | | (info) |\n",
		kube.launch.Format(ms), base.launch.Format(ms), lratio)
	fmt.Fprintf(&b, "| the next query (chaincode running), for reference | %s | %s | %.2f | | (info) |\n\n",
		kube.second.Format(ms), base.second.Format(ms), kube.second.Median()/base.second.Median())
	fmt.Fprintf(&b, "Where the first query's time goes (times since the query was sent; process start times from `/proc/<pid>/stat`, 10 ms resolution, so ±10 ms):\n\n")
	fmt.Fprintf(&b, "| step | kubecc | procbuilder |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| the peer starts the run hook | %s | %s (the script execs the chaincode in the same process) |\n", kube.runAt.Format(ms), base.runAt.Format(ms))
	fmt.Fprintf(&b, "| the chaincode process starts | %s (the pod's container process) | (as above) |\n", kube.ccAt.Format(ms))
	fmt.Fprintf(&b, "| the peer's launch duration ends (chaincode registered; the histogram's clock starts as the peer begins the launch) | %s | %s |\n", kube.launch.Format(ms), base.launch.Format(ms))
	fmt.Fprintf(&b, "| the query's answer is back at the client | %s | %s |\n\n", kube.first.Format(ms), base.first.Format(ms))
	if len(phases) > 0 {
		fmt.Fprintf(&b, "Where kubecc's launch goes (median over the %.0f launches of its package, from `run`'s lines in the peer log; times since run started):\n\n| phase | median |\n|---|---|\n", phases["launches"][0])
		for _, p := range []string{"pod created", "pod scheduled", "container started"} {
			if s := Sample(phases[p][1:]); len(s) > 0 {
				fmt.Fprintf(&b, "| %s | %s |\n", p, s.Format(ms))
			}
		}
		b.WriteString("\n(`container started` is when the kubelet reported it, which lags behind the container itself: the chaincode has often registered with the peer first.)\n\n")
	}
	if slow, err := secretRaces(filepath.Join(n.root, "logs", "kubelet.log"), n.ns, "cc-"+kName+"-"); err == nil && slow > 0 {
		fmt.Fprintf(&b, "In %d of kubecc's launches here the kubelet's first read of the pod's Secret was refused by the node authorizer, which had not yet linked the new pod to it, and the pod started about 1.5 s late (P3 says more).\n\n", slow)
	}
	if floor, err := p2Floor(ctx, n, runs); err != nil {
		env.Logf("P2: pod start floor: %v", err)
	} else {
		b.WriteString(floor)
	}
	fmt.Fprintf(&b, "Setup: the same chaincode (`examples/chaincode/go`) on the same peer, which has two external builders: kubecc first, then the minimal process builder (`e2e/fabric/procbuilder`: `go build`, then the binary runs as a local process that dials the peer). kubecc's package is a `kubecc package --launch pod` image package; the baseline is `peer lifecycle chaincode package --lang golang` output with metadata.json's type rewritten to `procgo`, which only procbuilder claims. Both were invoked once before the first figure, so kubecc's image is on the node and procbuilder's binary is built. ")
	b.WriteString("A relaunch is forced by stopping the chaincode: kubecc's pod is deleted (grace period 0) and the bench waits until the chaincode's container process (found in /proc by `CORE_CHAINCODE_ID_NAME` in its environment) and `run` have exited and the pod is gone (the pod object goes at once, the container a little later: only then does the peer see the chaincode's stream close); procbuilder's chaincode process gets SIGKILL and the bench waits until it is gone. Then the first query (Gateway evaluate `get`) makes the peer launch the chaincode again: its wall time covers the peer's launch (run hook started → chaincode registered) and the query. ")
	b.WriteString("Sources: wall times are measured in the bench process around the Gateway client call; the launch figure is the delta of the peer's own `chaincode_launch_duration` histogram (sum/count for the package ID, operations endpoint `/metrics`) across each first query.\n")
	return b.String(), nil
}

var p2PhaseLine = regexp.MustCompile(`kubecc run: (pod scheduled|container started)[^(]*\(([0-9.]+)(ms|s)\)`)
var p2Elapsed = regexp.MustCompile(`\(([0-9.]+)(ms|s)\)`)

// p2PodPhases reads run's per-phase lines for the launches of one resident package
// from the peer log: phase to [count, seconds...]; "launches" to [count].
func p2PodPhases(peerLog, packageID string) map[string][]float64 {
	data, err := os.ReadFile(peerLog)
	if err != nil {
		return nil
	}
	out := map[string][]float64{"launches": {0}}
	add := func(k, v, unit string) {
		if out[k] == nil {
			out[k] = []float64{0}
		}
		var f float64
		_, _ = fmt.Sscanf(v, "%g", &f)
		if unit == "ms" {
			f /= 1000
		}
		out[k][0]++
		out[k] = append(out[k], f)
	}
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "kubecc run: ") && strings.Contains(line, " created for ") {
			in = strings.Contains(line, "kubecc run: pod ") && strings.Contains(line, "created for "+packageID)
			if in {
				out["launches"][0]++
				if m := p2Elapsed.FindAllStringSubmatch(line, -1); len(m) > 0 {
					last := m[len(m)-1]
					add("pod created", last[1], last[2])
				}
			}
			continue
		}
		if !in {
			continue
		}
		if m := p2PhaseLine.FindStringSubmatch(line); m != nil {
			add(m[1], m[2], m[3])
		}
	}
	return out
}
