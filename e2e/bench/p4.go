package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func init() {
	register(Benchmark{ID: "P4", Title: "throughput: invokes/s through the peer, chaincode in a pod vs a local process", Run: runP4})
}

// p4Concurrency is how many goroutines call at once.
const p4Concurrency = 8

// p4Side is one chaincode under load.
type p4Side struct {
	what              string
	name, id          string
	submits, sErrs    int64
	submitTime        time.Duration
	evals, eErrs      int64
	evalTime          time.Duration
	endorse, putState [2]float64 // count, mean seconds (peer metrics, submit phase)
	evalEndorse       [2]float64
	firstErr          error
}

func runP4(ctx context.Context, env *Env) (string, error) {
	n, err := openNetwork(env.Root)
	if err != nil {
		return "", err
	}
	defer n.close()
	dir, err := os.MkdirTemp("", "kubecc-bench-p4-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	submitFor, evalFor := 60*time.Second, 20*time.Second
	if env.Quick {
		submitFor, evalFor = 15*time.Second, 5*time.Second
	}
	tag := strings.ToLower(env.RunID)

	kName, kID, bName, bID, err := deployPair(ctx, n, dir, "p4"+tag)
	defer stopChaincodes(context.WithoutCancel(ctx), n, kID, bID)
	if err != nil {
		return "", err
	}
	kube := &p4Side{what: "kubecc, resident pod", name: kName, id: kID}
	base := &p4Side{what: "procbuilder, local process", name: bName, id: bID}

	// Each side gets the full time in two halves, in the order k, b, b, k, so that a
	// drift of the machine's load hits both alike.
	order := []*p4Side{kube, base, base, kube}
	for _, s := range order {
		env.Logf("P4: %s: %d goroutines submitting for %s", s.name, p4Concurrency, submitFor/2)
		before, err := scrapePeer(ctx, n)
		if err != nil {
			return "", err
		}
		ok, bad, took, ferr := p4Load(ctx, n, s.name, submitFor/2, true)
		after, err := scrapePeer(ctx, n)
		if err != nil {
			return "", err
		}
		s.submits, s.sErrs, s.submitTime = s.submits+ok, s.sErrs+bad, s.submitTime+took
		if s.firstErr == nil {
			s.firstErr = ferr
		}
		p4Acc(&s.endorse, before, after, "endorser_proposal_duration", label("chaincode", s.name), label("success", "true"))
		p4Acc(&s.putState, before, after, "chaincode_shim_request_duration", label("chaincode", s.id), label("type", "PUT_STATE"))
	}
	for _, s := range order {
		env.Logf("P4: %s: %d goroutines evaluating for %s", s.name, p4Concurrency, evalFor/2)
		before, err := scrapePeer(ctx, n)
		if err != nil {
			return "", err
		}
		ok, bad, took, ferr := p4Load(ctx, n, s.name, evalFor/2, false)
		after, err := scrapePeer(ctx, n)
		if err != nil {
			return "", err
		}
		s.evals, s.eErrs, s.evalTime = s.evals+ok, s.eErrs+bad, s.evalTime+took
		if s.firstErr == nil {
			s.firstErr = ferr
		}
		p4Acc(&s.evalEndorse, before, after, "endorser_proposal_duration", label("chaincode", s.name), label("success", "true"))
	}

	rate := func(c int64, d time.Duration) float64 { return float64(c) / d.Seconds() }
	kS, bS := rate(kube.submits, kube.submitTime), rate(base.submits, base.submitTime)
	kE, bE := rate(kube.evals, kube.evalTime), rate(base.evals, base.evalTime)
	var b strings.Builder
	b.WriteString(env.Machine.Markdown(env.Command))
	fmt.Fprintf(&b, "\n%d goroutines, each calling in a loop through one Fabric Gateway client connection; every figure is the total over both halves of each side's time (order kubecc, baseline, baseline, kubecc).\n\n", p4Concurrency)
	fmt.Fprintf(&b, "| figure | kubecc (resident pod) | procbuilder (local process, baseline) | ratio kubecc/baseline | goal | result |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| invokes/s: submit `put` (endorse, order, wait for commit), %s per side | %.1f /s (%d in %s, %d errors) | %.1f /s (%d in %s, %d errors) | %.3f | ratio ≥ 0.95 | %s |\n",
		submitFor, kS, kube.submits, secs(kube.submitTime.Seconds()), kube.sErrs, bS, base.submits, secs(base.submitTime.Seconds()), base.sErrs, kS/bS, passMiss(kS/bS >= 0.95 && kube.sErrs == 0))
	fmt.Fprintf(&b, "| queries/s: evaluate `get` (endorsing peer only, no ordering), %s per side | %.1f /s (%d, %d errors) | %.1f /s (%d, %d errors) | %.3f | | (info) |\n",
		evalFor, kE, kube.evals, kube.eErrs, bE, base.evals, base.eErrs, kE/bE)
	fmt.Fprintf(&b, "| peer: mean proposal time during the submits (`endorser_proposal_duration`) | %s (%.0f) | %s (%.0f) | %.2f | | (info) |\n",
		ms(kube.endorse[1]), kube.endorse[0], ms(base.endorse[1]), base.endorse[0], kube.endorse[1]/base.endorse[1])
	fmt.Fprintf(&b, "| peer: mean proposal time during the queries | %s (%.0f) | %s (%.0f) | %.2f | | (info) |\n",
		ms(kube.evalEndorse[1]), kube.evalEndorse[0], ms(base.evalEndorse[1]), base.evalEndorse[0], kube.evalEndorse[1]/base.evalEndorse[1])
	fmt.Fprintf(&b, "| peer: mean PUT_STATE handling (`chaincode_shim_request_duration`) | %s (%.0f) | %s (%.0f) | %.2f | | (info) |\n\n",
		p4us(kube.putState[1]), kube.putState[0], p4us(base.putState[1]), base.putState[0], kube.putState[1]/base.putState[1])
	for _, s := range []*p4Side{kube, base} {
		if s.firstErr != nil {
			fmt.Fprintf(&b, "First error of %s: `%s`\n\n", s.what, strings.ReplaceAll(strings.SplitN(s.firstErr.Error(), "\n", 2)[0], "`", "'"))
		}
	}
	b.WriteString("Setup: the same chaincode (`examples/chaincode/go`) on the same peer: kubecc's `kubecc package --launch pod` image package (a resident pod dialling the peer over the node's bridge) and the baseline, the same Go source as a `procgo` package that the peer's second external builder, `e2e/fabric/procbuilder`, runs as a local process. Each goroutine writes its own key, so no transaction is invalidated by a conflict. ")
	b.WriteString("Sources: invokes/s and queries/s are counted in the bench process (calls that returned without error, divided by the wall time of the half); the proposal and PUT_STATE times are deltas of the peer's own histograms (operations endpoint `/metrics`, sum/count for the chaincode) over each side's halves, with the number of observations in parentheses. ")
	fmt.Fprintf(&b, "The orderer cuts a block every %s or 100 transactions, so the submit rate is bound by ordering and commit, not by where the chaincode runs; the query rate shows the chaincode path alone.\n", p4BatchTimeout(n))
	return b.String(), nil
}

// p4Load calls name from p4Concurrency goroutines for d: submit put, or evaluate get.
func p4Load(ctx context.Context, n *network, name string, d time.Duration, submit bool) (ok, bad int64, took time.Duration, firstErr error) {
	var wg sync.WaitGroup
	var okN, badN atomic.Int64
	var once sync.Once
	start := time.Now()
	deadline := start.Add(d)
	contract := n.contract(name)
	for g := 0; g < p4Concurrency; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			key := "p4-" + strconv.Itoa(g)
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				var err error
				if submit {
					_, err = contract.SubmitTransaction("put", key, strconv.Itoa(i))
				} else {
					_, err = contract.EvaluateTransaction("get", "k")
				}
				if err != nil {
					badN.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				okN.Add(1)
			}
		}(g)
	}
	wg.Wait()
	return okN.Load(), badN.Load(), time.Since(start), firstErr
}

// p4Acc adds a histogram's observations between two scrapes to acc (count, mean).
func p4Acc(acc *[2]float64, before, after peerMetrics, name string, labels ...string) {
	c, mean := histDelta(before, after, name, labels...)
	if c <= 0 {
		return
	}
	total := acc[0] + c
	acc[1] = (acc[0]*acc[1] + c*mean) / total
	acc[0] = total
}

// p4BatchTimeout is the orderer's batch timeout from the harness's parameters.
func p4BatchTimeout(n *network) string {
	data, err := os.ReadFile(filepath.Join(n.root, "fabric", "params"))
	if err == nil {
		for _, f := range strings.Fields(string(data)) {
			if v, ok := strings.CutPrefix(f, "batch="); ok {
				return v
			}
		}
	}
	return "100ms (the harness default)"
}

func p4us(v float64) string { return fmt.Sprintf("%.0f µs", v*1e6) }
