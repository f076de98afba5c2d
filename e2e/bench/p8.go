package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

func init() {
	register(Benchmark{ID: "P8", Title: "scale: many chaincodes on one peer (install throughput, restart, memory, API requests)", Run: runP8})
}

// p8Sizes are the numbers of chaincodes P8 puts on the peer: two, so that a figure
// that grows faster than the count shows.
var p8Sizes = []int{10, 20}

// p8Parallel is how many installs the bench sends at once (the peer builds each
// install's package while the call waits).
const p8Parallel = 4

// p8Round is what one round with count chaincodes measured.
type p8Round struct {
	count       int
	installRate float64 // packages per minute
	restart     float64 // peer start → every chaincode served one query, seconds
	rss, pss    float64 // all run hooks together, bytes
	requests    map[string]int
	launches    int
}

func runP8(ctx context.Context, env *Env) (string, error) {
	n, err := openNetwork(env.Root)
	if err != nil {
		return "", err
	}
	defer n.close()
	dir, err := os.MkdirTemp("", "kubecc-bench-p8-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	repeats := min(env.N, 2)
	rounds := map[int][]p8Round{}
	for r := 0; r < repeats; r++ {
		for _, count := range p8Sizes {
			env.Logf("P8: round %d/%d, %d chaincodes", r+1, repeats, count)
			round, err := p8Run(ctx, env, n, dir, fmt.Sprintf("p8%s%d%d", strings.ToLower(env.RunID), r, count), count)
			if err != nil {
				return "", err
			}
			rounds[count] = append(rounds[count], round)
		}
	}
	return p8Report(env, rounds), nil
}

// p8Run installs count different packages at once, commits them, measures, kills and
// restarts the peer and measures again; it stops its chaincodes at the end.
func p8Run(ctx context.Context, env *Env, n *network, dir, prefix string, count int) (p8Round, error) {
	res := p8Round{count: count}
	names := make([]string, count)
	pkgs := make([]string, count)
	for i := range names {
		names[i] = fmt.Sprintf("%s_%02d", prefix, i)
		src := filepath.Join(dir, names[i])
		if err := exampleVariant(env.Root, src, names[i]); err != nil {
			return res, err
		}
		pkgs[i] = filepath.Join(dir, names[i]+".tgz")
		if _, err := n.run(ctx, "peer", "lifecycle", "chaincode", "package", pkgs[i], "--lang", "golang", "--path", src, "--label", names[i]); err != nil {
			return res, err
		}
	}
	ids := make([]string, count)
	defer func() {
		var installed []string
		for _, id := range ids {
			if id != "" { // an empty ID would match every chaincode process
				installed = append(installed, id)
			}
		}
		stopChaincodes(context.WithoutCancel(ctx), n, installed...)
	}()

	start := time.Now()
	if err := parallel(count, p8Parallel, func(i int) error {
		id, err := n.install(ctx, pkgs[i])
		ids[i] = id
		return err
	}); err != nil {
		return res, err
	}
	res.installRate = float64(count) / time.Since(start).Minutes()
	for i, id := range ids {
		if err := n.approveCommit(ctx, names[i], id); err != nil {
			return res, err
		}
	}
	for _, name := range names {
		if _, err := n.contract(name).SubmitTransaction("put", "k", name); err != nil {
			return res, fmt.Errorf("invoke %s: %w", name, err)
		}
	}
	for _, id := range ids {
		ps := runProcs(id)
		if len(ps) != 1 {
			return res, fmt.Errorf("%d run processes for %s, want 1", len(ps), id)
		}
		rss, err := procStatus(ps[0].PID, "VmRSS")
		if err != nil {
			return res, err
		}
		pss, err := procKB(ps[0].PID, "smaps_rollup", "Pss")
		if err != nil {
			return res, err
		}
		res.rss, res.pss = res.rss+rss, res.pss+pss
	}

	audit := filepath.Join(n.root, "logs", "audit.log")
	off := fileSize(audit)
	peerCtl := filepath.Join(n.repo, "e2e", "fabric", "peer.sh")
	if _, err := n.run(ctx, "bash", peerCtl, "kill"); err != nil {
		return res, err
	}
	if _, err := n.run(ctx, "bash", peerCtl, "start"); err != nil {
		return res, err
	}
	started := time.Now()
	// Every chaincode answers one query; the peer relaunched them at its start.
	if err := parallel(count, count, func(i int) error {
		out, err := n.contract(names[i]).EvaluateTransaction("get", "k")
		if err == nil && string(out) != names[i] {
			err = fmt.Errorf("query %s: got %q", names[i], out)
		}
		return err
	}); err != nil {
		return res, err
	}
	res.restart = time.Since(started).Seconds()
	// The requests of the relaunch include the clean-up of the killed peer's
	// instances: count them once every package is down to its new instance.
	if err := p8Settled(ctx, n, ids, 90*time.Second); err != nil {
		return res, err
	}
	requests, err := auditRequests(audit, off)
	res.requests, res.launches = requests, count
	return res, err
}

// p8Settled waits until every package has one pod and one run hook again.
func p8Settled(ctx context.Context, n *network, ids []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		settled := true
		for _, id := range ids {
			c, err := n.chaincodePods(ctx, id)
			if err != nil {
				return err
			}
			if c != 1 || len(runProcs(id)) != 1 {
				settled = false
				break
			}
		}
		if settled {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("old instances still there %s after the restart", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// exampleVariant copies the example chaincode into dst with a line of its own, so that no
// two packages build the same image.
func exampleVariant(repo, dst, name string) error {
	src := filepath.Join(repo, "examples", "chaincode", "go")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	variant := fmt.Sprintf("package main\n\nimport \"os\"\n\nfunc init() { _, _ = os.Stderr.WriteString(%q) }\n", "variant "+name+"\n")
	return os.WriteFile(filepath.Join(dst, "variant.go"), []byte(variant), 0o644)
}

// parallel runs f(0..count-1), at most width at a time, and returns the first error.
func parallel(count, width int, f func(i int) error) error {
	sem := make(chan struct{}, width)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := 0; i < count; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(i)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func fileSize(p string) int64 {
	info, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return info.Size()
}

// auditRequests counts the requests kubecc's hooks (user agent kubecc) made after
// offset in the API server's audit log, by verb and resource.
func auditRequests(file string, offset int64) (map[string]int, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("audit log (e2e/cluster/up.sh starts the API server with one): %w", err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct {
			Stage     string `json:"stage"`
			Verb      string `json:"verb"`
			UserAgent string `json:"userAgent"`
			ObjectRef struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.UserAgent != "kubecc" {
			continue
		}
		// A watch logs ResponseStarted and, when it ends, ResponseComplete: count it once.
		if ev.Stage != "ResponseComplete" && ev.Stage != "Panic" {
			continue
		}
		res := ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			res += "/" + ev.ObjectRef.Subresource
		}
		out[ev.Verb+" "+res]++
	}
	return out, sc.Err()
}

func p8Report(env *Env, rounds map[int][]p8Round) string {
	var b strings.Builder
	b.WriteString(env.Machine.Markdown(env.Command))
	b.WriteString("| chaincodes | installs per minute (4 at a time) | peer start → every chaincode served a query | run hooks' VmRSS, all / per chaincode | their Pss, all / per chaincode | kubecc API requests per relaunch | N |\n|---|---|---|---|---|---|---|\n")
	mb := func(v float64) string { return fmt.Sprintf("%.1f MB", v/1e6) }
	per := func(s Sample, count int) Sample {
		out := Sample{}
		for _, v := range s {
			out = append(out, v/float64(count))
		}
		return out
	}
	var restartPer []Sample
	for _, count := range p8Sizes {
		var rate, restart, rss, pss, reqs Sample
		for _, r := range rounds[count] {
			rate, restart = append(rate, r.installRate), append(restart, r.restart)
			rss, pss = append(rss, r.rss), append(pss, r.pss)
			total := 0
			for _, c := range r.requests {
				total += c
			}
			reqs = append(reqs, float64(total)/float64(r.launches))
		}
		restartPer = append(restartPer, per(restart, count))
		fmt.Fprintf(&b, "| %d | %s | %s | %s / %s | %s / %s | %s | %d |\n", count,
			rate.Format(func(v float64) string { return fmt.Sprintf("%.1f", v) }), restart.Format(secs),
			rss.Format(mb), per(rss, count).Format(mb), pss.Format(mb), per(pss, count).Format(mb),
			reqs.Format(func(v float64) string { return fmt.Sprintf("%.1f", v) }), len(rounds[count]))
	}
	if len(restartPer) == 2 && restartPer[0].Median() > 0 {
		fmt.Fprintf(&b, "\nRestart time per chaincode: %s with %d, %s with %d (ratio %.2f; 1.00 is linear).\n",
			restartPer[0].Format(secs), p8Sizes[0], restartPer[1].Format(secs), p8Sizes[1], restartPer[1].Median()/restartPer[0].Median())
	}
	// The requests of the last round of the largest size, by kind.
	if rs := rounds[p8Sizes[len(p8Sizes)-1]]; len(rs) > 0 {
		last := rs[len(rs)-1]
		var kinds []string
		for k := range last.requests {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		fmt.Fprintf(&b, "\nkubecc's API requests in the relaunch of %d chaincodes (last round), by verb and resource: ", last.count)
		for i, k := range kinds {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", k, last.requests[k])
		}
		b.WriteString(".\n")
	}
	b.WriteString("\nWhy the restart grows with the count: the peer's chaincode custodian (Fabric's `core/chaincode/lifecycle/custodian.go`, `ChaincodeCustodian.Work`) launches chaincodes one at a time, each launch waiting until its chaincode registers, so a restart takes about the count times one launch; kubecc's run hooks themselves run side by side. ")
	b.WriteString("Setup: `examples/chaincode/go` with one extra line per package (no two share an image), packaged with the peer CLI; installs sent 4 at a time with the peer CLI (each build runs in the peer's build hook while its call waits); approve and commit one by one; one submit each through the Gateway. Memory: `/proc/<pid>/status` VmRSS and `smaps_rollup` Pss of every `run` hook (Pss charges the pages the hooks share, their executable, pro rata). Then `e2e/fabric/peer.sh kill` (SIGKILL) and `start`; the clock starts when `start` returns and stops when every chaincode has answered one query, all queried at once. API requests: the API server's audit log (user agent `kubecc`, stage ResponseComplete) from the kill until every package is down to one pod and one run hook, divided by the number of chaincodes: the relaunch with its sweep of the killed peer's instances.\n")
	return b.String()
}
