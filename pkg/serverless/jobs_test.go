package serverless

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/kubecc/kubecc/pkg/launch"
)

// fakeRelay is a relay whose signals the test gives by hand.
type fakeRelay struct {
	mu       sync.Mutex
	waiting  bool
	want     chan struct{}
	released chan struct{}
	events   chan Event
	end      chan error
}

func newFakeRelay() *fakeRelay {
	return &fakeRelay{want: make(chan struct{}, 1), released: make(chan struct{}, 1), events: make(chan Event, 4), end: make(chan error, 1)}
}

func (f *fakeRelay) Serve(ctx context.Context, _ time.Duration) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-f.end:
		return err
	}
}
func (f *fakeRelay) Events() <-chan Event      { return f.events }
func (f *fakeRelay) Want() <-chan struct{}     { return f.want }
func (f *fakeRelay) Released() <-chan struct{} { return f.released }
func (f *fakeRelay) Waiting() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiting
}

// call is what the relay does when a transaction waits: Waiting turns true, then Want.
func (f *fakeRelay) call() {
	f.mu.Lock()
	f.waiting = true
	f.mu.Unlock()
	f.want <- struct{}{}
}

// let go is what the relay does when the chaincode idles.
func (f *fakeRelay) letGo() {
	f.mu.Lock()
	f.waiting = false
	f.mu.Unlock()
	f.released <- struct{}{}
}

// fakeInstances records starts and deletes; an instance's Wait ends when the test
// ends it or its context is cancelled.
type fakeInstances struct {
	mu       sync.Mutex
	started  chan string
	deleted  []string
	exits    map[string]chan error
	startErr error
}

func newFakeInstances() *fakeInstances {
	return &fakeInstances{started: make(chan string, 8), exits: map[string]chan error{}}
}

func (f *fakeInstances) Start(_ context.Context, name string) (*launch.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return nil, f.startErr
	}
	f.exits[name] = make(chan error, 1)
	f.started <- name
	return &launch.Instance{Name: name}, nil
}

func (f *fakeInstances) Wait(ctx context.Context, in *launch.Instance) error {
	f.mu.Lock()
	exit := f.exits[in.Name]
	f.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-exit:
		return err
	}
}

func (f *fakeInstances) Delete(_ context.Context, in *launch.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, in.Name)
}

func (f *fakeInstances) exit(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exits[name] <- err
}

func (f *fakeInstances) deletes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deleted...)
}

type loopHarness struct {
	relay *fakeRelay
	inst  *fakeInstances
	done  chan error
	stop  context.CancelFunc
}

// startLoop runs the loop with instance "i0" already started, as Run does.
func startLoop(t *testing.T) *loopHarness {
	t.Helper()
	h := &loopHarness{relay: newFakeRelay(), inst: newFakeInstances(), done: make(chan error, 1)}
	n := 0
	var mu sync.Mutex
	newName := func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("i%d", n)
	}
	first, _ := h.inst.Start(context.Background(), "i0")
	<-h.inst.started
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	lp := &loop{relay: h.relay, inst: h.inst, log: launch.NewLog(io.Discard), newName: newName}
	go func() { h.done <- lp.serve(ctx, first) }()
	t.Cleanup(func() {
		cancel()
		if err := <-h.done; err != nil && !t.Failed() {
			t.Logf("loop ended with %v", err)
		}
	})
	return h
}

func (h *loopHarness) nextStart(t *testing.T) string {
	t.Helper()
	select {
	case name := <-h.inst.started:
		return name
	case <-time.After(5 * time.Second):
		t.Fatal("no instance started")
		return ""
	}
}

func (h *loopHarness) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not end")
		return nil
	}
}

func TestLoopScalesToZeroAndWakesOnACall(t *testing.T) {
	h := startLoop(t)
	h.relay.letGo()
	h.relay.call()
	if got := h.nextStart(t); got != "i1" {
		t.Fatalf("started %s", got)
	}
	if d := h.inst.deletes(); len(d) != 1 || d[0] != "i0" {
		t.Fatalf("deleted %v before the wake-up, want [i0]", d)
	}
	h.stop() // SIGTERM
	if err := h.result(t); err != nil {
		t.Fatalf("stop returned %v", err)
	}
	if d := h.inst.deletes(); len(d) != 2 || d[1] != "i1" {
		t.Fatalf("deleted %v, want [i0 i1]", d)
	}
}

// A Want read while the released chaincode was still current must still get a new one.
func TestLoopStartsOnWaitingEvenWhenTheWantCameEarly(t *testing.T) {
	h := startLoop(t)
	h.relay.call() // read while i0 is current: ignored
	h.relay.letGo()
	h.relay.mu.Lock()
	h.relay.waiting = true // the call still waits in the relay
	h.relay.mu.Unlock()
	if got := h.nextStart(t); got != "i1" {
		t.Fatalf("started %s", got)
	}
}

func TestLoopEndsWhenTheChaincodeExitsWhileAttached(t *testing.T) {
	h := startLoop(t)
	exit := &launch.ExitError{Code: 2}
	h.inst.exit("i0", exit)
	if err := h.result(t); !errors.Is(err, exit) {
		t.Fatalf("loop returned %v, want the chaincode's exit", err)
	}
	if d := h.inst.deletes(); len(d) != 1 || d[0] != "i0" {
		t.Fatalf("deleted %v", d)
	}
}

func TestLoopExitsQuietlyWhenTheRelayIsIdle(t *testing.T) {
	h := startLoop(t)
	h.relay.letGo()
	h.relay.end <- ErrIdle
	if err := h.result(t); err != nil {
		t.Fatalf("idle end returned %v", err)
	}
	if d := h.inst.deletes(); len(d) != 1 {
		t.Fatalf("deleted %v", d)
	}
}

func TestLoopFailsWhenAWakeUpCannotStart(t *testing.T) {
	h := startLoop(t)
	h.relay.letGo()
	h.inst.mu.Lock()
	h.inst.startErr = errors.New("create job: forbidden")
	h.inst.mu.Unlock()
	h.relay.call()
	if err := h.result(t); err == nil || err.Error() != "create job: forbidden" {
		t.Fatalf("loop returned %v", err)
	}
}

func TestLoopReturnsARelayError(t *testing.T) {
	h := startLoop(t)
	h.relay.end <- errors.New("peer stream ended: EOF")
	if err := h.result(t); err == nil || err.Error() != "peer stream ended: EOF" {
		t.Fatalf("loop returned %v", err)
	}
	if d := h.inst.deletes(); len(d) != 1 {
		t.Fatalf("deleted %v", d)
	}
}
