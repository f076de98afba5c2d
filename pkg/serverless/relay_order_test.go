package serverless

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	pb "github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// recorder dials the relay like a shim that answers only when told, and records
// every message it gets, in order. It starts reading when read is closed.
type recorder struct {
	conn   *grpc.ClientConn
	stream pb.ChaincodeSupport_RegisterClient
	got    chan *pb.ChaincodeMessage
	read   chan struct{}
}

func dialRecorder(t *testing.T, addr string, opts ...grpc.DialOption) *recorder {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := pb.NewChaincodeSupportClient(conn).Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.ChaincodeMessage{Type: pb.ChaincodeMessage_REGISTER}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{conn: conn, stream: stream, got: make(chan *pb.ChaincodeMessage, 1000), read: make(chan struct{})}
	go func() {
		select {
		case <-rec.read:
		case <-ctx.Done():
			return
		}
		for {
			m, err := stream.Recv()
			if err != nil {
				close(rec.got)
				return
			}
			rec.got <- m
		}
	}()
	return rec
}

// expect reads the recorder's next messages and checks them against want: a type,
// or a transaction ID for a TRANSACTION.
func (rec *recorder) expect(t *testing.T, want ...string) {
	t.Helper()
	for i, w := range want {
		m := waitFor(t, rec.got, 10*time.Second, fmt.Sprintf("message %d (%s)", i, w))
		if m == nil {
			t.Fatalf("message %d: stream ended, want %s", i, w)
		}
		got := m.Type.String()
		if m.Type == pb.ChaincodeMessage_TRANSACTION {
			got = m.Txid
		}
		if got != w {
			t.Fatalf("message %d is %s, want %s", i, got, w)
		}
	}
}

// answer completes the transactions with the given IDs, and checks that the peer gets
// each COMPLETED.
func (rec *recorder) answer(t *testing.T, p *fakePeer, txids ...string) {
	t.Helper()
	for _, id := range txids {
		if err := rec.stream.Send(&pb.ChaincodeMessage{Type: pb.ChaincodeMessage_COMPLETED, Txid: id, ChannelId: "ch"}); err != nil {
			t.Fatal(err)
		}
		if got := waitFor(t, p.completed, 10*time.Second, "COMPLETED of "+id); got != id {
			t.Fatalf("peer got COMPLETED of %s, want %s", got, id)
		}
	}
}

// within calls f and fails the test if it does not return in d: the relay's state
// must stay readable whatever a chaincode does.
func within[T any](t *testing.T, d time.Duration, what string, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return waitFor(t, ch, d, what+" (is the relay holding its lock while it sends?)")
}

// releasedFirst runs one transaction through the first chaincode and waits until the
// relay has let go of it, so the next peer messages wait for a new chaincode.
func releasedFirst(t *testing.T) *setup {
	t.Helper()
	s := startLinger(t, false, 0, time.Minute, 0, context.Background())
	s.peer.txs <- "tx0"
	waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED of tx0")
	waitFor(t, s.relay.Released(), 5*time.Second, "release of the first chaincode")
	if err := waitFor(t, s.ccEnd, 5*time.Second, "first chaincode's stream end"); err == nil {
		t.Fatal("first chaincode's stream did not end")
	}
	return s
}

func txMsg(id string, payload []byte) *pb.ChaincodeMessage {
	return &pb.ChaincodeMessage{Type: pb.ChaincodeMessage_TRANSACTION, Txid: id, ChannelId: "ch", Payload: payload}
}

func txIDs(from, to int) []string {
	var ids []string
	for i := from; i <= to; i++ {
		ids = append(ids, fmt.Sprintf("tx%d", i))
	}
	return ids
}

// stuckRecorder is a chaincode that does not read yet: small fixed flow-control
// windows (no growth with the bandwidth estimate) make the relay's sends to it block
// once large messages fill them.
func stuckRecorder(t *testing.T, addr string) *recorder {
	t.Helper()
	return dialRecorder(t, addr, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
}

// eventually waits for a level of the relay's state that raises no event, failing if
// the state cannot be read meanwhile.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !within(t, 5*time.Second, what, f) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// backlog has the peer send transactions too large for a stuck chaincode while none is
// attached, and waits until they all wait in the relay: with two or more, sending them
// blocks (gRPC lets the first through into its buffers).
func backlog(t *testing.T, s *setup, ids []string, size int) {
	t.Helper()
	big := make([]byte, size)
	for _, id := range ids {
		s.peer.raw <- txMsg(id, big)
	}
	eventually(t, "the backlog waiting in the relay", func() bool { return s.relay.InFlight() == len(ids) })
	if !s.relay.Waiting() {
		t.Fatal("the backlog is not waiting")
	}
}

// attachStuck attaches a chaincode that does not read; the relay is then blocked
// sending it the backlog. Attaching raises no event before the backlog is sent, so
// this looks at the level.
func attachStuck(t *testing.T, r *Relay) *recorder {
	t.Helper()
	rec := stuckRecorder(t, r.Addr())
	eventually(t, "the stuck chaincode attached", r.Attached)
	return rec
}

// A chaincode that is slow to take its backlog must not freeze the relay: the
// launcher, Serve and the peer reader all need its state meanwhile.
func TestRelayStateStaysReadableWhileAChaincodeIsSlowToRead(t *testing.T) {
	s := releasedFirst(t)
	backlog(t, s, txIDs(1, 3), 256<<10) // more than the stuck chaincode's windows
	rec := attachStuck(t, s.relay)
	// The relay is now sending the backlog to a chaincode that does not read; a new
	// peer message queues behind it, and the relay answers all the while.
	s.peer.raw <- txMsg("tx4", nil)
	if within(t, 5*time.Second, "Waiting", s.relay.Waiting) {
		t.Fatal("Waiting with the chaincode attached")
	}
	eventually(t, "tx4 in flight", func() bool { return s.relay.InFlight() == 4 })
	close(rec.read)
	rec.expect(t, "REGISTERED", "READY", "tx1", "tx2", "tx3", "tx4")
	rec.answer(t, s.peer, txIDs(1, 4)...)
}

// A chaincode attaching while the peer keeps sending must see the greeting, then what
// waited for it, then the rest, each once and in the peer's order. The backlog is held
// up mid-send by a chaincode that does not read yet, so a peer message certainly
// arrives while it is on its way; more arrive as it drains and after. A backlog of
// several messages gives a message sent around it several chances to overtake.
func TestRelayReattachWhileThePeerStreamsKeepsItsOrder(t *testing.T) {
	s := releasedFirst(t)
	const n, held = 200, 10
	ids := txIDs(1, n)
	backlog(t, s, ids[:held], 256<<10)
	rec := attachStuck(t, s.relay)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		payload := make([]byte, 4<<10)
		for _, id := range ids[held:] {
			s.peer.raw <- txMsg(id, payload)
		}
	}()
	eventually(t, "a peer message reaching the relay behind the held-up backlog", func() bool { return s.relay.InFlight() > held })
	close(rec.read)
	rec.expect(t, append([]string{"REGISTERED", "READY"}, ids...)...)
	waitFor(t, fed, 5*time.Second, "the peer sending all transactions")
	if got := within(t, 5*time.Second, "InFlight", s.relay.InFlight); got != n {
		t.Fatalf("in flight %d, want %d", got, n)
	}
	rec.answer(t, s.peer, ids...)
	select {
	case m, ok := <-rec.got:
		if ok {
			t.Fatalf("extra message %s %s", m.Type, m.Txid)
		}
	default:
	}
	if s.relay.Waiting() {
		t.Fatal("messages still wait after the chaincode took them all")
	}
}

// A chaincode that goes away while the relay sends it its backlog leaves what it was
// not sent to the next one, in order and once.
func TestRelayChaincodeLostDuringItsBacklogLeavesTheRestWaiting(t *testing.T) {
	s := releasedFirst(t)
	ids := txIDs(1, 3)
	backlog(t, s, ids, 256<<10)
	// Clear the Want the backlog raised: from here on only losing the chaincode can.
	waitFor(t, s.relay.Want(), 5*time.Second, "want for the backlog")
	stuck := attachStuck(t, s.relay)
	_ = stuck.conn.Close() // the pod dies while a send to it is blocked
	waitFor(t, s.relay.Want(), 10*time.Second, "want after the chaincode was lost")
	if !within(t, 5*time.Second, "Waiting", s.relay.Waiting) {
		t.Fatal("nothing waits after the chaincode was lost")
	}
	rec := dialRecorder(t, s.relay.Addr())
	close(rec.read)
	rec.expect(t, "REGISTERED", "READY")
	// A send that returned before the stream broke counts as delivered, so the new
	// chaincode gets a tail of the backlog: at least the last, in order, none twice.
	first := waitFor(t, rec.got, 10*time.Second, "first waiting transaction")
	if first == nil {
		t.Fatal("stream ended, want the rest of the backlog")
	}
	start := -1
	for i, id := range ids {
		if first.Txid == id {
			start = i
		}
	}
	if start < 0 {
		t.Fatalf("first message %s %s, want one of %v", first.Type, first.Txid, ids)
	}
	rec.expect(t, ids[start+1:]...)
	rec.answer(t, s.peer, ids[start:]...)
	select {
	case m, ok := <-rec.got:
		if ok {
			t.Fatalf("extra message %s %s", m.Type, m.Txid)
		}
	default:
	}
}

// peerGate is a TCP proxy to the peer that holds every connection until open is closed,
// and reports when the relay closes its side of one.
type peerGate struct {
	addr     string
	accepted chan struct{}
	open     chan struct{}
	closed   chan struct{}

	mu    sync.Mutex
	conns []net.Conn
}

func (g *peerGate) keep(c net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conns = append(g.conns, c)
}

func startPeerGate(t *testing.T, target string) *peerGate {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &peerGate{addr: lis.Addr().String(), accepted: make(chan struct{}, 10), open: make(chan struct{}), closed: make(chan struct{}, 10)}
	t.Cleanup(func() {
		_ = lis.Close()
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, c := range g.conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			g.keep(c)
			g.accepted <- struct{}{}
			go func() {
				<-g.open
				up, err := net.Dial("tcp", target)
				if err != nil {
					_ = c.Close()
					return
				}
				g.keep(up)
				go func() { _, _ = io.Copy(c, up) }()
				_, _ = io.Copy(up, c) // until the relay closes its side
				g.closed <- struct{}{}
				_ = up.Close()
			}()
		}
	}()
	return g
}

// A relay told to stop while the peer has not answered its registration yet must
// stop without waiting for the peer, and close the connection it opened: else the
// stop hangs, and the peer may keep a chaincode nobody serves.
func TestRelayStopWhileRegisteringClosesThePeerConnection(t *testing.T) {
	_, peerAddr := startPeer(t, nil)
	g := startPeerGate(t, peerAddr)
	r, err := New(Config{Listen: "127.0.0.1:0", PeerAddress: g.addr, IdleTimeout: time.Hour, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, time.Second) }()
	if _, err := chaincode(t, r.Addr(), nil, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g.accepted, 5*time.Second, "the relay dialling the peer")
	cancel()
	// The gate still holds the connection: the peer has not answered.
	if err := waitFor(t, served, 5*time.Second, "relay end while the peer does not answer"); err != nil {
		t.Fatalf("Serve returned %v after a stop", err)
	}
	close(g.open)
	waitFor(t, g.closed, 10*time.Second, "the relay closing its peer connection")
}

// Stops racing registrations that go through: whichever wins, Serve ends and the relay
// closes its peer connection; the race detector watches the fields both sides touch.
func TestRelayStopRacingRegistrationClosesThePeerConnection(t *testing.T) {
	for i := 0; i < 10; i++ {
		_, peerAddr := startPeer(t, nil)
		g := startPeerGate(t, peerAddr)
		close(g.open)
		r, err := New(Config{Listen: "127.0.0.1:0", PeerAddress: g.addr, IdleTimeout: time.Hour, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- r.Serve(ctx, time.Second) }()
		if _, err := chaincode(t, r.Addr(), nil, 0); err != nil {
			t.Fatal(err)
		}
		waitFor(t, g.accepted, 5*time.Second, "the relay dialling the peer")
		cancel()
		if err := waitFor(t, served, 5*time.Second, "relay end"); err != nil {
			t.Fatalf("iteration %d: Serve returned %v after a stop", i, err)
		}
		waitFor(t, g.closed, 10*time.Second, fmt.Sprintf("iteration %d: the relay closing its peer connection", i))
	}
}
