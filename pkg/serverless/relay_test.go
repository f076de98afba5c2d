package serverless

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	pb "github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// fakePeer is a ChaincodeSupport server that registers a chaincode and sends it the
// transactions queued on txs and the messages queued on raw; it records what happened.
type fakePeer struct {
	pb.UnimplementedChaincodeSupportServer
	txs       chan string
	raw       chan *pb.ChaincodeMessage
	completed chan string
	ended     chan error
	srv       *grpc.Server
}

func (p *fakePeer) Register(s pb.ChaincodeSupport_RegisterServer) error {
	m, err := s.Recv()
	if err != nil || m.Type != pb.ChaincodeMessage_REGISTER {
		return errors.New("want REGISTER first")
	}
	for _, t := range []pb.ChaincodeMessage_Type{pb.ChaincodeMessage_REGISTERED, pb.ChaincodeMessage_READY} {
		if err := s.Send(&pb.ChaincodeMessage{Type: t}); err != nil {
			return err
		}
	}
	go func() {
		for {
			var m *pb.ChaincodeMessage
			select {
			case txid := <-p.txs:
				m = &pb.ChaincodeMessage{Type: pb.ChaincodeMessage_TRANSACTION, Txid: txid, ChannelId: "ch"}
			case m = <-p.raw:
			case <-s.Context().Done():
				return
			}
			_ = s.Send(m)
		}
	}()
	for {
		m, err := s.Recv()
		if err != nil {
			p.ended <- err
			return nil //nolint:nilerr // the fake peer reports the end on p.ended; the relay sees a clean close
		}
		if m.Type == pb.ChaincodeMessage_COMPLETED {
			p.completed <- m.Txid
		}
	}
}

func startPeer(t testing.TB, tlsCfg *tls.Config) (*fakePeer, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	srv := grpc.NewServer(opts...)
	p := &fakePeer{txs: make(chan string, 10), raw: make(chan *pb.ChaincodeMessage), completed: make(chan string, 10), ended: make(chan error, 1), srv: srv}
	pb.RegisterChaincodeSupportServer(srv, p)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return p, lis.Addr().String()
}

// chaincode dials the relay like a shim and answers each transaction after delay.
func chaincode(t testing.TB, addr string, tlsCfg *tls.Config, delay time.Duration) (<-chan error, error) {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	stream, err := pb.NewChaincodeSupportClient(conn).Register(context.Background())
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pb.ChaincodeMessage{Type: pb.ChaincodeMessage_REGISTER}); err != nil {
		return nil, err
	}
	ended := make(chan error, 1)
	var mu sync.Mutex
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				ended <- err
				return
			}
			if m.Type == pb.ChaincodeMessage_TRANSACTION {
				go func(m *pb.ChaincodeMessage) {
					time.Sleep(delay)
					mu.Lock()
					defer mu.Unlock()
					_ = stream.Send(&pb.ChaincodeMessage{Type: pb.ChaincodeMessage_COMPLETED, Txid: m.Txid, ChannelId: m.ChannelId})
				}(m)
			}
		}
	}()
	return ended, nil
}

type setup struct {
	peer   *fakePeer
	relay  *Relay
	served chan error
	ccEnd  <-chan error
}

func start(t testing.TB, withTLS bool, idle, delay time.Duration, ctx context.Context) *setup {
	return startLinger(t, withTLS, idle, -1, delay, ctx)
}

func startLinger(t testing.TB, withTLS bool, idle, linger, delay time.Duration, ctx context.Context) *setup {
	t.Helper()
	var peerServer, peerClient *tls.Config
	if withTLS {
		// The peer's own PKI, standing in for the peer-minted certificates.
		peerPKI, err := MintCerts("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		peerServer = peerPKI.ServerTLS()
		if peerClient, err = peerPKI.ClientTLS(); err != nil {
			t.Fatal(err)
		}
	}
	p, addr := startPeer(t, peerServer)
	r, err := New(Config{Listen: "127.0.0.1:0", PeerAddress: addr, PeerTLS: peerClient, IdleTimeout: idle, Linger: linger, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, 2*time.Second) }()
	var ccTLS *tls.Config
	if withTLS {
		if ccTLS, err = r.Certs().ClientTLS(); err != nil {
			t.Fatal(err)
		}
	}
	ccEnd, err := chaincode(t, r.Addr(), ccTLS, delay)
	if err != nil {
		t.Fatal(err)
	}
	return &setup{peer: p, relay: r, served: served, ccEnd: ccEnd}
}

func waitFor[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func TestIdleZeroEndsAfterTheFirstTransactionOverTLS(t *testing.T) {
	s := start(t, true, 0, 0, context.Background())
	s.peer.txs <- "tx1"
	if got := waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED at the peer"); got != "tx1" {
		t.Fatalf("completed %s", got)
	}
	if err := waitFor(t, s.served, 5*time.Second, "relay end"); !errors.Is(err, ErrIdle) {
		t.Fatalf("Serve returned %v, want ErrIdle", err)
	}
	_ = waitFor(t, s.peer.ended, 5*time.Second, "peer stream end")
	if err := waitFor(t, s.ccEnd, 5*time.Second, "chaincode stream end"); err == nil {
		t.Fatal("chaincode stream did not end")
	}
	var events []Event
	for len(s.relay.Events()) > 0 {
		events = append(events, <-s.relay.Events())
	}
	want := []Event{EventConnected, EventRegistered, EventFirstTx}
	if len(events) != 3 || events[0] != want[0] || events[1] != want[1] || events[2] != want[2] {
		t.Fatalf("events %v, want %v", events, want)
	}
}

func TestTransactionInFlightIsNeverCut(t *testing.T) {
	s := start(t, false, 100*time.Millisecond, 600*time.Millisecond, context.Background())
	s.peer.txs <- "slow"
	// Well past the idle timeout, the transaction is still being served.
	time.Sleep(300 * time.Millisecond)
	if n := s.relay.InFlight(); n != 1 {
		t.Fatalf("in flight %d, want 1", n)
	}
	select {
	case err := <-s.served:
		t.Fatalf("relay ended with a transaction in flight: %v", err)
	default:
	}
	waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED")
	if err := waitFor(t, s.served, 5*time.Second, "idle end"); !errors.Is(err, ErrIdle) {
		t.Fatalf("Serve returned %v", err)
	}
}

func TestIdleTimerRestartsWithEachTransaction(t *testing.T) {
	s := start(t, false, 400*time.Millisecond, 0, context.Background())
	for i := 0; i < 4; i++ {
		s.peer.txs <- string(rune('a' + i))
		waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED")
		time.Sleep(200 * time.Millisecond) // gaps shorter than the idle timeout
		select {
		case err := <-s.served:
			t.Fatalf("relay ended after %d transactions: %v", i+1, err)
		default:
		}
	}
	if err := waitFor(t, s.served, 5*time.Second, "idle end"); !errors.Is(err, ErrIdle) {
		t.Fatalf("Serve returned %v", err)
	}
}

func TestStopDrainsTheTransactionInFlight(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := start(t, true, time.Hour, 500*time.Millisecond, ctx)
	s.peer.txs <- "tx"
	time.Sleep(100 * time.Millisecond)
	cancel() // SIGTERM while the transaction runs
	if got := waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED after stop"); got != "tx" {
		t.Fatal(got)
	}
	if err := waitFor(t, s.served, 5*time.Second, "relay end"); err != nil {
		t.Fatalf("Serve returned %v after a stop", err)
	}
}

func TestChaincodeWithoutTheLaunchCertificateIsRefused(t *testing.T) {
	s := start(t, true, time.Hour, 0, context.Background())
	// A second client with a certificate from another CA.
	other, _ := MintCerts("127.0.0.1")
	otherTLS, _ := other.ClientTLS()
	otherTLS.RootCAs = nil
	otherTLS.InsecureSkipVerify = true // only the relay's check of the client is under test
	ended, err := chaincode(t, s.relay.Addr(), otherTLS, 0)
	if err == nil {
		err = waitFor(t, ended, 5*time.Second, "refusal")
	}
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("a chaincode with a foreign certificate got through: %v", err)
	}
}

func TestPeerGoneEndsTheRelay(t *testing.T) {
	s := start(t, false, time.Hour, 0, context.Background())
	s.peer.txs <- "tx"
	waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED")
	s.peer.srv.Stop() // the peer goes away: its stream breaks
	if err := waitFor(t, s.served, 5*time.Second, "relay end"); err == nil || errors.Is(err, ErrIdle) {
		t.Fatalf("Serve returned %v, want the stream error", err)
	}
}

func TestSlowRegistrationIsNotIdle(t *testing.T) {
	_, addr := startPeer(t, nil)
	r, err := New(Config{Listen: "127.0.0.1:0", PeerAddress: addr, IdleTimeout: 50 * time.Millisecond, Linger: -1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve(context.Background(), time.Second) }()
	// A cold pod takes far longer than the idle timeout to connect.
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-served:
		t.Fatalf("relay ended before the chaincode connected: %v", err)
	default:
	}
	if _, err := chaincode(t, r.Addr(), nil, 0); err != nil {
		t.Fatal(err)
	}
	// Registered, never called: it waits UnusedGrace, not the idle timeout.
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-served:
		t.Fatalf("relay ended before the first transaction's grace: %v", err)
	default:
	}
}

func TestIdleChaincodeIsReplacedWithoutThePeerNoticing(t *testing.T) {
	s := startLinger(t, true, 0, 300*time.Millisecond, 0, context.Background())
	s.peer.txs <- "tx1"
	waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED of tx1")
	// Idle timeout 0: the relay lets go of the chaincode, the peer stream stays.
	waitFor(t, s.relay.Released(), 5*time.Second, "release")
	if err := waitFor(t, s.ccEnd, 5*time.Second, "chaincode stream end"); err == nil {
		t.Fatal("chaincode stream did not end")
	}
	select {
	case err := <-s.peer.ended:
		t.Fatalf("the peer saw the stream end: %v", err)
	default:
	}
	// A transaction for the gone chaincode waits in the relay, which wants a new one.
	s.peer.txs <- "tx2"
	waitFor(t, s.relay.Want(), 5*time.Second, "want")
	ccTLS, _ := s.relay.Certs().ClientTLS()
	ccEnd2, err := chaincode(t, s.relay.Addr(), ccTLS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED of tx2"); got != "tx2" {
		t.Fatalf("completed %s", got)
	}
	_ = waitFor(t, ccEnd2, 5*time.Second, "second chaincode released")
	// With no chaincode for the linger time, the relay ends the peer stream.
	if err := waitFor(t, s.served, 5*time.Second, "relay end"); !errors.Is(err, ErrIdle) {
		t.Fatalf("Serve returned %v, want ErrIdle", err)
	}
	_ = waitFor(t, s.peer.ended, 5*time.Second, "peer stream end")
}

// A call that lands right after the relay let go of its chaincode must find Released
// already signalled and Waiting true: a launcher that reads Want before Released (Go's
// select picks at random) would otherwise think the released chaincode serves it, and
// the call would wait for the peer's execute timeout.
func TestCallRightAfterReleaseIsWaitingWithReleaseSignalled(t *testing.T) {
	s := startLinger(t, false, 0, time.Minute, 0, context.Background())
	s.peer.txs <- "tx1"
	waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED of tx1")
	deadline := time.Now().Add(5 * time.Second)
	for s.relay.Attached() {
		if time.Now().After(deadline) {
			t.Fatal("the relay never let go of the idle chaincode")
		}
		time.Sleep(time.Millisecond)
	}
	if s.relay.Waiting() {
		t.Fatal("Waiting with no call")
	}
	s.peer.txs <- "tx2"
	waitFor(t, s.relay.Want(), 5*time.Second, "want")
	select {
	case <-s.relay.Released():
	default:
		t.Fatal("Want fired before Released for the chaincode it replaces")
	}
	if !s.relay.Waiting() {
		t.Fatal("tx2 is not waiting after Want was read")
	}
	ccEnd2, err := chaincode(t, s.relay.Addr(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, s.peer.completed, 5*time.Second, "COMPLETED of tx2"); got != "tx2" {
		t.Fatalf("completed %s", got)
	}
	if s.relay.Waiting() {
		t.Fatal("still Waiting after the new chaincode took tx2")
	}
	_ = waitFor(t, ccEnd2, 5*time.Second, "second chaincode released")
}
