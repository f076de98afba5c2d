package main

// S1, the soak: a steady load of writes through the Fabric Gateway against resident and
// serverless chaincode while a seeded script breaks things (chaincode pods deleted, the
// API server killed, the peer restarted or killed), then every write the client was
// told committed is read back. It takes the shared harness for its whole run and
// disrupts it, so it runs only when BENCH_ONLY names it (`make soak`), never in CI.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() {
	register(Benchmark{ID: "S1", Title: "soak: invokes under faults (chaincode pods deleted, API server and peer restarted)", Manual: true, Run: runS1})
}

const (
	// Each phase of a write has its own bound, so a failed call ends in an error the
	// client can act on instead of a hang. The endorsement's outlasts the peer's own
	// execute timeout (30 s), so that the peer's error reaches the client.
	s1EndorseTimeout = 40 * time.Second
	s1SubmitTimeout  = 15 * time.Second
	s1StatusTimeout  = 60 * time.Second
	s1CallBound      = s1EndorseTimeout + s1SubmitTimeout + s1StatusTimeout

	s1IdleTimeout = 2 * time.Second
	// Serverless chaincode under a steady load never goes idle; a pause longer than
	// its idle timeout now and then makes it scale to zero and start cold again.
	s1Pause      = 2*s1IdleTimeout + time.Second
	s1MaxBackoff = 2 * time.Second
	// No fault starts this close to the end, so that the load sees the harness recover.
	s1QuietEnd      = 30 * time.Second
	s1APIServerDown = "5"
	// A block's state commit normally takes a few milliseconds; one that waits this
	// long waited for the channel's state lock (see s1CommitStalls).
	s1StallMin = 200 * time.Millisecond
)

// s1Config is the soak's environment: SOAK_DURATION, SOAK_SEED, SOAK_FAULT_EVERY.
type s1Config struct {
	duration           time.Duration
	seed               uint64
	faultMin, faultMax time.Duration
}

func s1Settings() (s1Config, error) {
	c := s1Config{duration: 10 * time.Minute, seed: 1, faultMin: 20 * time.Second, faultMax: 60 * time.Second}
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			return c, fmt.Errorf("SOAK_DURATION=%q: want a duration of at least 1m", v)
		}
		c.duration = d
	}
	if v := os.Getenv("SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("SOAK_SEED=%q: want a non-negative integer", v)
		}
		c.seed = s
	}
	if v := os.Getenv("SOAK_FAULT_EVERY"); v != "" {
		lo, hi, _ := strings.Cut(v, "-")
		a, err1 := time.ParseDuration(lo)
		b, err2 := time.ParseDuration(hi)
		if err1 != nil || err2 != nil || a < time.Second || b < a {
			return c, fmt.Errorf("SOAK_FAULT_EVERY=%q: want MIN-MAX, e.g. 20s-60s", v)
		}
		c.faultMin, c.faultMax = a, b
	}
	return c, nil
}

// s1Outcome is what the client may conclude about a write from how its call ended.
type s1Outcome int

const (
	s1Committed    s1Outcome = iota // the commit status said valid: the key must be there
	s1NotCommitted                  // never sent to ordering, or invalidated: it must not
	s1Unknown                       // sent to ordering, then no answer: either is right
)

// s1Attempt is one call: one key, written once.
type s1Attempt struct {
	key, value string
	retry      int // 0: the write's first attempt
	end        time.Time
	took       time.Duration
	outcome    s1Outcome
	cause      string
	message    string
}

// s1Gap is a time when a chaincode served no write although the client was trying.
type s1Gap struct {
	from, to time.Time
	open     bool // still no success when the soak ended
}

func (g s1Gap) length() time.Duration { return g.to.Sub(g.from) }

// s1Chaincode is one deployed chaincode and what its writer saw; only its writer
// goroutine touches it until the load is over.
type s1Chaincode struct {
	name, id   string
	serverless bool
	attempts   []s1Attempt
	writes     int // logical writes begun (each may take several attempts)
	retried    int // writes whose first attempt failed
	retriedOK  int // ... that a retry then committed
	unfinished int // ... still failing when the soak ended
	pauses     int
	longest    s1Gap
	sent, ok   atomic.Int64

	// the read-back
	found, lost, wrong            int
	unknownPresent, unknownAbsent int
	phantom, unreadable           int
	firstLost                     string
	podsAtEnd, runsAtEnd          int
}

// s1Fault is one fault the script injected.
type s1Fault struct {
	n      int
	kind   string
	target string
	at     time.Time
	took   time.Duration
	err    error
}

func runS1(ctx context.Context, env *Env) (string, error) {
	cfg, err := s1Settings()
	if err != nil {
		return "", err
	}
	n, err := openNetwork(env.Root)
	if err != nil {
		return "", err
	}
	defer n.close()
	ccs, err := s1Deploy(ctx, env, n)
	defer func() {
		var ids []string
		for _, c := range ccs {
			ids = append(ids, c.id)
		}
		stopChaincodes(context.WithoutCancel(ctx), n, ids...)
	}()
	if err != nil {
		return "", err
	}

	env.Logf("S1: soak for %s, seed %d, a fault every %s-%s", cfg.duration, cfg.seed, cfg.faultMin, cfg.faultMax)
	peerLog := filepath.Join(n.root, "logs", "peer.log")
	logFrom := s1Size(peerLog)
	start := time.Now()
	until := start.Add(cfg.duration)
	var wg sync.WaitGroup
	for i, c := range ccs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.load(ctx, n, until, rand.New(rand.NewPCG(cfg.seed, uint64(i+1))))
		}()
	}
	var faults []s1Fault
	wg.Add(1)
	go func() {
		defer wg.Done()
		faults = s1Faults(ctx, env, n, ccs, cfg, start, until)
	}()
	stopProgress := s1Progress(env, ccs, start)
	wg.Wait()
	stopProgress()
	if err := ctx.Err(); err != nil {
		s1Heal(context.WithoutCancel(ctx), env, n, ccs)
		return "", err
	}
	loadEnd := time.Now()
	blocks, stalls, err := s1CommitStalls(peerLog, logFrom, loadEnd)
	if err != nil {
		return "", err
	}

	health := s1Heal(ctx, env, n, ccs)
	s1Census(ctx, n, ccs)
	if err := s1Verify(ctx, env, n, ccs); err != nil {
		return "", err
	}
	r := s1Report(env, cfg, ccs, faults, health, start, loadEnd)
	return r + s1StallReport(blocks, stalls, faults, start), nil
}

// s1Deploy deploys two resident and two serverless packages of the example chaincode
// under names new to this run, and calls each once so that all four run.
func s1Deploy(ctx context.Context, env *Env, n *network) ([]*s1Chaincode, error) {
	dir, err := os.MkdirTemp("", "kubecc-bench-s1-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	tag := strings.ToLower(env.RunID)
	var ccs []*s1Chaincode
	for i, serverless := range []bool{false, false, true, true} {
		c := &s1Chaincode{name: fmt.Sprintf("s1%sr%d", tag, i+1), serverless: serverless}
		extra := []string{"--launch", "pod"}
		if serverless {
			c.name = fmt.Sprintf("s1%sj%d", tag, i-1)
			extra = []string{"--launch", "job", "--idle-timeout", s1IdleTimeout.String()}
		}
		env.Logf("S1: deploying %s (%s)", c.name, strings.Join(extra, " "))
		pkg, err := n.kubeccPackage(ctx, dir, c.name, extra...)
		if err != nil {
			return ccs, err
		}
		if c.id, err = n.deploy(ctx, c.name, pkg); err != nil {
			return ccs, err
		}
		ccs = append(ccs, c)
	}
	for _, c := range ccs {
		if _, err := n.contract(c.name).SubmitTransaction("put", "first", "1"); err != nil {
			return ccs, fmt.Errorf("first call of %s: %w", c.name, err)
		}
	}
	return ccs, nil
}

// load writes to the chaincode until the soak ends: one call at a time, a new key
// for every call. A failed write is retried, with a new key, until it commits.
func (c *s1Chaincode) load(ctx context.Context, n *network, until time.Time, rng *rand.Rand) {
	contract := n.contract(c.name)
	seq := 0
	since := time.Now() // the last success, or when the client began to want one
	nextPause := time.Now().Add(s1PauseEvery(rng))
	running := func() bool { return ctx.Err() == nil && time.Now().Before(until) }
	for running() {
		c.writes++
		backoff := 250 * time.Millisecond
		for retry := 0; ; retry++ {
			if retry > 0 && !running() {
				c.unfinished++
				break
			}
			seq++
			a := s1Put(ctx, contract, "w"+strconv.Itoa(seq), fmt.Sprintf("%d/%d", seq, c.writes))
			a.retry = retry
			c.attempts = append(c.attempts, a)
			c.sent.Add(1)
			if a.outcome == s1Committed {
				c.ok.Add(1)
				if g := (s1Gap{from: since, to: a.end}); g.length() > c.longest.length() {
					c.longest = g
				}
				since = a.end
				if retry > 0 {
					c.retriedOK++
				}
				break
			}
			if retry == 0 {
				c.retried++
			}
			s1Sleep(ctx, backoff)
			backoff = min(2*backoff, s1MaxBackoff)
		}
		if c.serverless && time.Now().After(nextPause) && time.Now().Add(s1Pause).Before(until) {
			s1Sleep(ctx, s1Pause)
			c.pauses++
			since, nextPause = time.Now(), time.Now().Add(s1PauseEvery(rng))
		}
	}
	if g := (s1Gap{from: since, to: time.Now(), open: true}); g.length() > c.longest.length() {
		c.longest = g
	}
}

func s1PauseEvery(rng *rand.Rand) time.Duration {
	return 20*time.Second + time.Duration(rng.Int64N(int64(20*time.Second)))
}

func s1Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// s1Put writes key through the Gateway's three steps, each bounded, so that the
// step that failed tells whether the transaction can have reached the ledger.
func s1Put(ctx context.Context, contract *client.Contract, key, value string) (a s1Attempt) {
	a.key, a.value = key, value
	start := time.Now()
	defer func() { a.end = time.Now(); a.took = a.end.Sub(start) }()
	fail := func(outcome s1Outcome, phase string, err error) s1Attempt {
		a.outcome = outcome
		a.cause, a.message = s1Classify(phase, err)
		return a
	}
	prop, err := contract.NewProposal("put", client.WithArguments(key, value))
	if err != nil {
		return fail(s1NotCommitted, "proposal", err)
	}
	ectx, cancel := context.WithTimeout(ctx, s1EndorseTimeout)
	tx, err := prop.EndorseWithContext(ectx)
	cancel()
	if err != nil {
		return fail(s1NotCommitted, "endorse", err)
	}
	sctx, cancel := context.WithTimeout(ctx, s1SubmitTimeout)
	commit, err := tx.SubmitWithContext(sctx)
	cancel()
	if err != nil {
		return fail(s1Unknown, "submit", err)
	}
	cctx, cancel := context.WithTimeout(ctx, s1StatusTimeout)
	st, err := commit.StatusWithContext(cctx)
	cancel()
	if err != nil {
		return fail(s1Unknown, "commit status", err)
	}
	if !st.Successful {
		a.outcome = s1NotCommitted
		a.cause = "commit: transaction invalidated (" + st.Code.String() + ")"
		a.message = fmt.Sprintf("transaction committed as %s in block %d", st.Code, st.BlockNumber)
		return a
	}
	a.outcome = s1Committed
	return a
}

// s1Rules group error texts into causes; the first match wins. The connection rule
// reads only the status message, which is the client's own when the peer is away: the
// details, what the peer said, may quote a chaincode's connection errors.
var s1Rules = []struct {
	re         *regexp.Regexp
	cause      string
	statusOnly bool
}{
	{regexp.MustCompile(`deadline exceeded|context canceled`), "no answer within the call's timeout", false},
	{regexp.MustCompile(`^(connection error|error reading from server|stream terminated by rst_stream|transport)`), "peer unreachable", true},
	{regexp.MustCompile(`timeout expired while starting chaincode|could not launch chaincode|failed to start|launch`), "chaincode could not be launched", false},
	{regexp.MustCompile(`timeout expired while executing`), "chaincode did not answer (execute timeout)", false},
	{regexp.MustCompile(`chaincode stream|error sending|chaincode .*(not running|unregistered|has been shut|terminated)`), "chaincode connection lost", false},
	{regexp.MustCompile(`no peers available|endorsement policy|discovery|no combination`), "gateway had no endorser for the chaincode", false},
	{regexp.MustCompile(`orderer|broadcast|service unavailable`), "orderer unreachable", false},
}

var (
	s1Hex    = regexp.MustCompile(`[0-9a-f]{16,}`)
	s1Number = regexp.MustCompile(`\b\d+(\.\d+)?(ms|s|µs)?\b`)
	s1Names  = regexp.MustCompile(`s1[0-9a-z]+[rj]\d`)
)

// s1Classify names the cause of a failed step and returns its message with the parts
// that vary between calls (IDs, names, numbers) masked.
func s1Classify(phase string, err error) (cause, message string) {
	st := status.Convert(err)
	text := s1Text(err)
	lower := strings.ToLower(text)
	cause = "other (" + st.Code().String() + ")"
	for _, r := range s1Rules {
		if r.statusOnly && r.re.MatchString(strings.ToLower(st.Message())) || !r.statusOnly && r.re.MatchString(lower) {
			cause = r.cause
			break
		}
	}
	if st.Code() == codes.Unavailable && strings.HasPrefix(cause, "other") {
		cause = "peer unreachable"
	}
	message = s1Number.ReplaceAllString(s1Hex.ReplaceAllString(s1Names.ReplaceAllString(text, "CC"), "…"), "N")
	if len(message) > 300 {
		message = message[:300] + "…"
	}
	return phase + ": " + cause, message
}

// s1Text is an error's message with the details the Gateway attaches (what each
// endorsing peer said).
func s1Text(err error) string {
	st := status.Convert(err)
	text := st.Message()
	for _, d := range st.Details() {
		if ed, ok := d.(*gateway.ErrorDetail); ok {
			text += "; " + ed.GetAddress() + ": " + ed.GetMessage()
		}
	}
	if errors.Is(err, context.DeadlineExceeded) && !strings.Contains(text, "deadline") {
		text += " (context deadline exceeded)"
	}
	return text
}

// s1Faults injects faults at random intervals until the soak's quiet end. The first
// four are the four kinds in a random order, so that a long enough soak sees each.
func s1Faults(ctx context.Context, env *Env, n *network, ccs []*s1Chaincode, cfg s1Config, start, until time.Time) []s1Fault {
	rng := rand.New(rand.NewPCG(cfg.seed, 0))
	kinds := []string{"pod", "apiserver", "peer-restart", "peer-kill"}
	order := append([]string(nil), kinds...)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var out []s1Fault
	for i := 0; ; i++ {
		wait := cfg.faultMin + time.Duration(rng.Int64N(int64(cfg.faultMax-cfg.faultMin)+1))
		if time.Now().Add(wait).After(until.Add(-s1QuietEnd)) {
			return out
		}
		s1Sleep(ctx, wait)
		if ctx.Err() != nil {
			return out
		}
		kind := order[i%len(order)]
		if i >= len(order) {
			// Pod deletions weigh double: they are the fault kubecc itself must handle.
			kind = append([]string{"pod"}, kinds...)[rng.IntN(len(kinds)+1)]
		}
		f := s1Inject(ctx, env, n, ccs, kind, rng)
		f.n = i + 1
		out = append(out, f)
		res := "ok"
		if f.err != nil {
			res = f.err.Error()
		}
		env.Logf("S1: fault %d at t+%.0fs: %s %s (%.1f s): %s", f.n, f.at.Sub(start).Seconds(), f.kind, f.target, f.took.Seconds(), res)
	}
}

// s1Inject injects one fault and waits until its command is done (the peer or API
// server back and serving, for the restarts).
func s1Inject(ctx context.Context, env *Env, n *network, ccs []*s1Chaincode, kind string, rng *rand.Rand) s1Fault {
	f := s1Fault{kind: kind, at: time.Now()}
	switch kind {
	case "pod":
		f.target, f.err = s1DeletePod(ctx, n, ccs, rng.IntN(len(ccs)))
	case "apiserver":
		f.target = "down " + s1APIServerDown + " s"
		f.err = s1Script(ctx, env, "e2e/cluster/restart-apiserver.sh", s1APIServerDown)
	case "peer-restart":
		f.target = "SIGTERM, start"
		f.err = s1Script(ctx, env, "e2e/fabric/peer.sh", "restart")
	case "peer-kill":
		down := time.Second + time.Duration(rng.Int64N(int64(4*time.Second)))
		f.target = fmt.Sprintf("SIGKILL, down %.1f s, start", down.Seconds())
		f.err = s1Script(ctx, env, "e2e/fabric/peer.sh", "kill")
		if f.err == nil {
			s1Sleep(ctx, down)
		}
		// Started even when the kill failed or the soak was interrupted: the harness
		// must be left with its peer.
		if err := s1Script(ctx, env, "e2e/fabric/peer.sh", "start"); f.err == nil {
			f.err = err
		}
	}
	f.took = time.Since(f.at)
	return f
}

// s1DeletePod deletes, with no grace period, a pod of the chaincode ccs[first], or of
// the next one that has a pod (serverless chaincode may be scaled to zero).
func s1DeletePod(ctx context.Context, n *network, ccs []*s1Chaincode, first int) (string, error) {
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i := range ccs {
		c := ccs[(first+i)%len(ccs)]
		names, err := s1Pods(kctx, n, c.id)
		if err != nil {
			return c.name, err
		}
		if len(names) == 0 {
			continue
		}
		zero := int64(0)
		if err := n.kube.CoreV1().Pods(n.ns).Delete(kctx, names[0], metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			return c.name, err
		}
		return c.name + " (" + names[0] + ")", nil
	}
	return "none", errors.New("no chaincode of the soak had a pod")
}

// s1Script runs one of the harness's scripts; they wait for what they start.
func s1Script(ctx context.Context, env *Env, script string, args ...string) error {
	// Not cancelled with the soak: a restart stopped half-way would leave the harness
	// without its peer or API server.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(sctx, "bash", append([]string{filepath.Join(env.Root, script)}, args...)...)
	cmd.Dir = env.Root
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	last := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", script, strings.Join(args, " "), err, last)
	}
	return nil
}

// s1Progress logs the load's totals every 30 s until the returned function is called.
func s1Progress(env *Env, ccs []*s1Chaincode, start time.Time) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var parts []string
				for _, c := range ccs {
					parts = append(parts, fmt.Sprintf("%s %d/%d", c.name, c.ok.Load(), c.sent.Load()))
				}
				env.Logf("S1: t+%.0fs committed/sent: %s", time.Since(start).Seconds(), strings.Join(parts, ", "))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// s1Health is the harness's state after the soak.
type s1Health struct {
	peer, apiServer bool
	notes           []string
}

// s1Heal makes sure the peer runs and the API server answers, as the soak found them.
func s1Heal(ctx context.Context, env *Env, n *network, ccs []*s1Chaincode) s1Health {
	var h s1Health
	if err := s1Script(ctx, env, "e2e/fabric/peer.sh", "status"); err != nil {
		h.notes = append(h.notes, "the peer was not running after the soak; started it")
		if err := s1Script(ctx, env, "e2e/fabric/peer.sh", "start"); err != nil {
			h.notes = append(h.notes, err.Error())
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !h.apiServer && time.Now().Before(deadline) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
		cancel()
		h.apiServer = err == nil
		if !h.apiServer {
			s1Sleep(ctx, time.Second)
		}
	}
	if !h.apiServer {
		h.notes = append(h.notes, "the API server was not ready 2 min after the soak")
	}
	// The peer is healthy when it serves every chaincode of the soak through the Gateway.
	h.peer = true
	for _, c := range ccs {
		var err error
		for time.Now().Before(deadline) {
			ectx, cancel := context.WithTimeout(ctx, s1EndorseTimeout)
			_, err = n.contract(c.name).EvaluateWithContext(ectx, "ping")
			cancel()
			if err == nil {
				break
			}
			s1Sleep(ctx, time.Second)
		}
		if err != nil {
			h.peer = false
			_, msg := s1Classify("ping", err)
			h.notes = append(h.notes, fmt.Sprintf("%s did not answer ping: %s", c.name, msg))
		}
	}
	return h
}

// s1Census counts, before the chaincodes are stopped, the pods and `run` processes
// each has: more than one would be a leftover of a launch the faults interrupted.
func s1Census(ctx context.Context, n *network, ccs []*s1Chaincode) {
	for _, c := range ccs {
		names, _ := s1Pods(ctx, n, c.id)
		c.podsAtEnd = len(names)
		for _, p := range procsOf(c.id, "") {
			if strings.HasPrefix(filepath.Base(p.Args[0]), "run") {
				c.runsAtEnd++
			}
		}
	}
}

// s1Verify reads back every key the load wrote, once a write after all of them (the
// barrier) has committed on each chaincode, so that the peer's state holds every
// transaction that was ordered.
func s1Verify(ctx context.Context, env *Env, n *network, ccs []*s1Chaincode) error {
	for _, c := range ccs {
		var a s1Attempt
		for i := 0; i < 10; i++ {
			if a = s1Put(ctx, n.contract(c.name), "barrier", "1"); a.outcome == s1Committed {
				break
			}
			s1Sleep(ctx, 3*time.Second)
		}
		if a.outcome != s1Committed {
			return fmt.Errorf("%s: no write commits after the soak: %s: %s", c.name, a.cause, a.message)
		}
	}
	env.Logf("S1: reading back every key")
	var wg sync.WaitGroup
	for _, c := range ccs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.verify(ctx, n)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (c *s1Chaincode) verify(ctx context.Context, n *network) {
	contract := n.contract(c.name)
	for _, a := range c.attempts {
		v, present, err := s1Get(ctx, contract, a.key)
		switch {
		case err != nil:
			c.unreadable++
		case a.outcome == s1Committed && present && v == a.value:
			c.found++
		case a.outcome == s1Committed && present:
			c.wrong++
		case a.outcome == s1Committed:
			c.lost++
			if c.firstLost == "" {
				c.firstLost = fmt.Sprintf("%s (committed at %s)", a.key, a.end.UTC().Format("15:04:05.000"))
			}
		case a.outcome == s1NotCommitted && present:
			c.phantom++
		case a.outcome == s1Unknown && present:
			c.unknownPresent++
		case a.outcome == s1Unknown:
			c.unknownAbsent++
		}
	}
}

// s1Get reads key; a missing key is the chaincode's "not found" error. Other errors
// are retried for a while.
func s1Get(ctx context.Context, contract *client.Contract, key string) (string, bool, error) {
	var err error
	for i := 0; i < 10; i++ {
		ectx, cancel := context.WithTimeout(ctx, s1EndorseTimeout)
		var v []byte
		v, err = contract.EvaluateWithContext(ectx, "get", client.WithArguments(key))
		cancel()
		if err == nil {
			return string(v), true, nil
		}
		if strings.Contains(s1Text(err), fmt.Sprintf("key %q not found", key)) {
			return "", false, nil
		}
		s1Sleep(ctx, time.Second)
	}
	return "", false, err
}

// s1Pods names the chaincode's pods that are neither being deleted nor finished.
func s1Pods(ctx context.Context, n *network, packageID string) ([]string, error) {
	pods, err := n.kube.CoreV1().Pods(n.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubecc"})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		if p.Annotations["kubecc.io/package-id"] == packageID && p.DeletionTimestamp == nil &&
			p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			names = append(names, p.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// s1Cause is one row of the failure table.
type s1Cause struct {
	cause, message string
	count          int
	outcome        s1Outcome
}

func s1Report(env *Env, cfg s1Config, ccs []*s1Chaincode, faults []s1Fault, h s1Health, start, loadEnd time.Time) string {
	var sent, committed, notCommitted, unknown, retried, retriedOK, unfinished, found, lost, wrong, phantom, unreadable, uPresent, uAbsent int
	var longestCall time.Duration
	causes := map[string]*s1Cause{}
	for _, c := range ccs {
		retried, retriedOK, unfinished = retried+c.retried, retriedOK+c.retriedOK, unfinished+c.unfinished
		found, lost, wrong, phantom, unreadable = found+c.found, lost+c.lost, wrong+c.wrong, phantom+c.phantom, unreadable+c.unreadable
		uPresent, uAbsent = uPresent+c.unknownPresent, uAbsent+c.unknownAbsent
		for _, a := range c.attempts {
			sent++
			longestCall = max(longestCall, a.took)
			switch a.outcome {
			case s1Committed:
				committed++
				continue
			case s1NotCommitted:
				notCommitted++
			case s1Unknown:
				unknown++
			}
			k := causes[a.cause]
			if k == nil {
				k = &s1Cause{cause: a.cause, message: a.message, outcome: a.outcome}
				causes[a.cause] = k
			}
			k.count++
		}
	}
	wall := loadEnd.Sub(start)
	var b strings.Builder
	b.WriteString(env.Machine.Markdown(env.Command))
	fmt.Fprintf(&b, "\nNot part of `make bench` or CI: it takes the harness for its whole run and breaks it on purpose. %s of load (seed %d), four chaincodes, one writer each; a fault every %s–%s (uniformly random), none in the last %s.\n\n",
		cfg.duration, cfg.seed, cfg.faultMin, cfg.faultMax, s1QuietEnd)

	b.WriteString("| figure | result | goal | result |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| invokes sent (submit `put` of a new key) | %d in %s (%.1f /s) | | (info) |\n", sent, secs(wall.Seconds()), float64(sent)/wall.Seconds())
	fmt.Fprintf(&b, "| succeeded (commit status valid) | %d (%.2f %%) | | (info) |\n", committed, 100*float64(committed)/float64(max(sent, 1)))
	fmt.Fprintf(&b, "| failed, not committed (endorsement failed, or invalidated) | %d | | (info) |\n", notCommitted)
	fmt.Fprintf(&b, "| failed, outcome unknown (sent to ordering, then no status) | %d: %d in the ledger, %d not | | (info) |\n", unknown, uPresent, uAbsent)
	fmt.Fprintf(&b, "| writes retried after a failure (with a new key) | %d: %d committed on a retry, %d still failing when the soak ended | | (info) |\n",
		retried, retriedOK, unfinished)
	fmt.Fprintf(&b, "| ledger: committed writes found with their value | %d / %d | all | %s |\n", found, committed, passMiss(found == committed))
	fmt.Fprintf(&b, "| ledger: committed writes **lost** (missing, or another value) | %d (%d missing, %d another value) | 0 | %s |\n", lost+wrong, lost, wrong, passMiss(lost+wrong == 0))
	fmt.Fprintf(&b, "| ledger: writes reported not committed that are there anyway | %d | 0 | %s |\n", phantom, passMiss(phantom == 0))
	if unreadable > 0 {
		fmt.Fprintf(&b, "| ledger: keys that could not be read back | %d | 0 | **MISS** |\n", unreadable)
	}
	fmt.Fprintf(&b, "| longest single call (every step bounded: endorse %s, submit %s, commit status %s) | %s | ≤ %s (no hang) | %s |\n",
		s1EndorseTimeout, s1SubmitTimeout, s1StatusTimeout, secs(longestCall.Seconds()), s1CallBound, passMiss(longestCall <= s1CallBound+5*time.Second))
	fmt.Fprintf(&b, "| harness after the soak: peer serving every chaincode through the Gateway, API server ready | peer %s, API server %s | both | %s |\n\n",
		s1YesNo(h.peer), s1YesNo(h.apiServer), passMiss(h.peer && h.apiServer))
	for _, note := range h.notes {
		fmt.Fprintf(&b, "Note: %s\n\n", note)
	}

	s1CauseTable(&b, causes, notCommitted+unknown)
	s1ChaincodeTable(&b, ccs, faults, start)
	s1FaultTable(&b, faults, start)

	fmt.Fprintf(&b, "Setup: `examples/chaincode/go` as four `kubecc package` image packages deployed under names new to the run: two resident (`--launch pod`), two serverless (`--launch job --idle-timeout %s`). One writer per chaincode calls the Fabric Gateway client (the bench's connection, gRPC's default reconnect backoff) in a loop: `put w<n> <n>/<write>`, a new key for every call, as endorse, submit and commit status with a context timeout each. ", s1IdleTimeout)
	fmt.Fprintf(&b, "A failed write is retried with a new key after a backoff (250 ms doubling to %s) until it commits. The serverless writers pause for %s every 20–40 s, so that their chaincode scales to zero and starts cold under the faults too. ", s1MaxBackoff, s1Pause)
	b.WriteString("Outcome of a failed call: a failed endorsement never reached the orderer (the key must be absent); a failed submit or commit status leaves it unknown (either is right, counted apart); an invalid commit status wrote nothing. ")
	b.WriteString("Faults, from a seeded random script (`SOAK_SEED`), the first four one of each kind: a chaincode pod deleted with grace period 0 (client-go; a random chaincode of the soak, the next with a pod if it has none), `e2e/cluster/restart-apiserver.sh " + s1APIServerDown + "` (SIGKILL, down 5 s, started again, waits for `/readyz`), `e2e/fabric/peer.sh restart` (SIGTERM, then start), `peer.sh kill`, 1–5 s down, `peer.sh start`; pod deletions weigh double after the first four. The script waits for each to finish. ")
	b.WriteString("Unavailability of a chaincode: the longest span between two successive committed writes (the end of one call to the end of the next), retry backoff included; a deliberate pause restarts the span. ")
	b.WriteString("The check: after the load, a write per chaincode that commits (so that the peer's ledger holds everything ordered before it), then an evaluate `get` of every key the writers used. ")
	fmt.Fprintf(&b, "Run it with `make soak` (`SOAK_DURATION`, default 10m; `SOAK_SEED`, default 1; `SOAK_FAULT_EVERY`, default 20s-60s).\n")
	return b.String()
}

func s1YesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func s1CauseTable(b *strings.Builder, causes map[string]*s1Cause, failed int) {
	if failed == 0 {
		b.WriteString("No call failed.\n\n")
		return
	}
	rows := make([]*s1Cause, 0, len(causes))
	for _, c := range causes {
		rows = append(rows, c)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].count != rows[j].count {
			return rows[i].count > rows[j].count
		}
		return rows[i].cause < rows[j].cause
	})
	fmt.Fprintf(b, "Failed calls by cause (%d; the step that failed, then what its error says; first message, IDs and numbers masked):\n\n", failed)
	b.WriteString("| cause | calls | outcome | first message |\n|---|---|---|---|\n")
	for _, r := range rows {
		outcome := "not committed"
		if r.outcome == s1Unknown {
			outcome = "unknown"
		}
		fmt.Fprintf(b, "| %s | %d | %s | `%s` |\n", r.cause, r.count, outcome, s1Cell(r.message))
	}
	b.WriteString("\n")
}

func s1ChaincodeTable(b *strings.Builder, ccs []*s1Chaincode, faults []s1Fault, start time.Time) {
	b.WriteString("Per chaincode (pods and `run` processes counted at the end of the load, before the soak stopped its chaincodes):\n\n")
	b.WriteString("| chaincode | launch | invokes sent | committed | failed | longest unavailability | faults in it or up to 10 s before | ledger: found / committed | unknown outcome: there / not | pods, `run` processes at the end |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range ccs {
		launch := "resident pod"
		if c.serverless {
			launch = fmt.Sprintf("serverless job, %d idle pauses", c.pauses)
		}
		committed := int(c.ok.Load())
		g := c.longest
		span := fmt.Sprintf("%s (t+%.0f s to t+%.0f s)", secs(g.length().Seconds()), g.from.Sub(start).Seconds(), g.to.Sub(start).Seconds())
		if g.open {
			span += ", open at the end"
		}
		var in []string
		for _, f := range faults {
			if !f.at.Before(g.from.Add(-10*time.Second)) && f.at.Before(g.to) {
				in = append(in, fmt.Sprintf("#%d %s", f.n, f.kind))
			}
		}
		if len(in) == 0 {
			in = []string{"none"}
		}
		fmt.Fprintf(b, "| %s | %s | %d | %d | %d | %s | %s | %d / %d | %d / %d | %d, %d |\n",
			c.name, launch, len(c.attempts), committed, len(c.attempts)-committed, span, strings.Join(in, ", "),
			c.found, committed, c.unknownPresent, c.unknownAbsent, c.podsAtEnd, c.runsAtEnd)
		if c.firstLost != "" {
			fmt.Fprintf(b, "\n**Lost write** on %s: first %s.\n\n", c.name, c.firstLost)
		}
	}
	b.WriteString("\n")
}

func s1FaultTable(b *strings.Builder, faults []s1Fault, start time.Time) {
	fmt.Fprintf(b, "Faults injected (%d):\n\n", len(faults))
	b.WriteString("| # | at (UTC) | t | fault | target | took | result |\n|---|---|---|---|---|---|---|\n")
	for _, f := range faults {
		res := "ok"
		if f.err != nil {
			res = "error: `" + s1Cell(f.err.Error()) + "`"
		}
		fmt.Fprintf(b, "| %d | %s | +%.0f s | %s | %s | %s | %s |\n", f.n, f.at.UTC().Format("15:04:05"), f.at.Sub(start).Seconds(), s1FaultName(f.kind), f.target, secs(f.took.Seconds()), res)
	}
	b.WriteString("\n")
}

func s1FaultName(kind string) string {
	switch kind {
	case "pod":
		return "chaincode pod deleted (grace 0)"
	case "apiserver":
		return "API server killed and restarted"
	case "peer-restart":
		return "peer restarted"
	case "peer-kill":
		return "peer killed, then started"
	}
	return kind
}

// s1Cell makes text fit in a Markdown table cell inside backticks.
func s1Cell(s string) string {
	return strings.NewReplacer("`", "'", "|", "/", "\n", " ").Replace(s)
}

// s1Stall is a block whose state commit waited at least s1StallMin.
type s1Stall struct {
	from  time.Time // when the commit began to wait
	block int
	wait  time.Duration
}

var (
	s1CommitLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC .*Committed block \[(\d+)\] with \d+ transaction\(s\) in \d+ms \(.*state_commit=(\d+)ms`)
	s1ANSI       = regexp.MustCompile("\x1b\\[[0-9;]*m")
)

func s1Size(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

// s1CommitStalls reads the peer's log from offset to the end of the load: the blocks
// it committed, and those whose state commit waited. Fabric commits a block's writes
// under the channel's state lock, which every endorsement holds shared while its
// chaincode runs, a chaincode launch included: a slow launch holds up the commits of
// every chaincode on the channel.
func s1CommitStalls(path string, offset int64, until time.Time) (int, []s1Stall, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, nil, err
	}
	blocks := 0
	var stalls []s1Stall
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), "Committed block") {
			continue
		}
		m := s1CommitLine.FindStringSubmatch(s1ANSI.ReplaceAllString(sc.Text(), ""))
		if m == nil {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05.000", m[1], time.UTC)
		if err != nil || at.After(until) {
			continue
		}
		blocks++
		ms, _ := strconv.Atoi(m[3])
		block, _ := strconv.Atoi(m[2])
		if wait := time.Duration(ms) * time.Millisecond; wait >= s1StallMin {
			stalls = append(stalls, s1Stall{from: at.Add(-wait), block: block, wait: wait})
		}
	}
	return blocks, stalls, sc.Err()
}

func s1StallReport(blocks int, stalls []s1Stall, faults []s1Fault, start time.Time) string {
	var total time.Duration
	for _, s := range stalls {
		total += s.wait
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nPeer commits held up (the peer's log, `Committed block ... state_commit=`): %d of the %d blocks committed during the load waited %s or more for the channel's state lock, %s in all", len(stalls), blocks, s1StallMin, secs(total.Seconds()))
	if len(stalls) == 0 {
		b.WriteString(".\n")
		return b.String()
	}
	sort.SliceStable(stalls, func(i, j int) bool { return stalls[i].wait > stalls[j].wait })
	b.WriteString("; the longest:\n\n| block | waited from | waited | the last fault before it |\n|---|---|---|---|\n")
	for _, s := range stalls[:min(len(stalls), 8)] {
		last := "none"
		for _, f := range faults {
			if !f.at.After(s.from) {
				last = fmt.Sprintf("#%d %s, %.0f s before", f.n, s1FaultName(f.kind), s.from.Sub(f.at).Seconds())
			}
		}
		fmt.Fprintf(&b, "| %d | %s (t+%.0f s) | %s | %s |\n", s.block, s.from.UTC().Format("15:04:05.0"), s.from.Sub(start).Seconds(), secs(s.wait.Seconds()), last)
	}
	b.WriteString("\nFabric commits a block's writes under the channel's state lock, which every endorsement holds shared from before its chaincode is called until it answers, a chaincode launch included (`core/endorser`: the transaction simulator is taken first). A commit waiting for the lock makes every new endorsement wait behind it (`lockbased_txmgr.go`: a `sync.RWMutex`). So a slow launch, such as a serverless chaincode's cold start while the cluster cannot start its pod, holds up every chaincode on the channel, up to the peer's execute timeout (30 s).\n")
	return b.String()
}
