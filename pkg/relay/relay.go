// Package relay is the transaction-aware proxy that makes serverless chaincode work
// with a stock peer. The chaincode dials the relay (inside run); the relay dials the
// peer with the peer-minted certificate and passes ChaincodeMessages both ways,
// counting transactions in flight. When none is in flight and nothing has happened for
// the idle timeout, it ends both streams: the peer then treats the chaincode as gone
// and calls run again on the next invoke.
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	pb "github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// maxMsgSize matches the peer's and the shims' limit.
const maxMsgSize = 100 << 20

// UnusedGrace is the least time a chaincode waits for its first transaction after it
// registered: the peer launches every chaincode at start and at commit, and one that
// is never called must not stay forever, but one launched by an invoke must live to
// serve it.
const UnusedGrace = 10 * time.Second

// Config of a relay.
type Config struct {
	// Listen is host:port to listen on (port 0: any free port).
	Listen string
	// Advertise is the host pods dial; default: Listen's host.
	Advertise string
	// PeerAddress is the peer's chaincode address (chaincode.json peer_address).
	PeerAddress string
	// PeerTLS dials the peer with TLS (nil: plain, the peer has TLS off). It also turns
	// on TLS toward the chaincode with certificates minted for this launch.
	PeerTLS *tls.Config
	// IdleTimeout: 0 ends after the first transactions complete; N ends after N without any.
	IdleTimeout time.Duration
	// Logf receives progress lines.
	Logf func(format string, args ...any)
}

// Event is a milestone of a launch, for per-phase timing.
type Event string

// Milestones.
const (
	EventConnected  Event = "chaincode connected"
	EventRegistered Event = "registered"
	EventFirstTx    Event = "first transaction"
)

// ErrIdle ends Serve when the chaincode was idle for the idle timeout.
var ErrIdle = errors.New("idle")

// Relay is one launch's relay.
type Relay struct {
	cfg    Config
	lis    net.Listener
	srv    *grpc.Server
	certs  *Certs
	addr   string
	events chan Event
	done   chan error

	mu       sync.Mutex
	claimed  bool
	inflight map[string]bool
	last     time.Time
	started  time.Time
	served   int
	closing  bool
	wake     chan struct{}
	// registered: the peer answered REGISTERED.
	registered bool

	closeOnce   sync.Once
	closed      chan struct{} // closed when the relay starts ending the streams
	handlerDone chan struct{} // closed when the chaincode's Register call returns
}

// New listens and, with TLS, mints the launch's certificates.
func New(cfg Config) (*Relay, error) {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("relay address %q: %w", cfg.Listen, err)
	}
	if cfg.Advertise == "" {
		cfg.Advertise = host
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	r := &Relay{cfg: cfg, events: make(chan Event, 8), done: make(chan error, 1), inflight: map[string]bool{}, wake: make(chan struct{}, 1), closed: make(chan struct{}), handlerDone: make(chan struct{})}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMsgSize), grpc.MaxSendMsgSize(maxMsgSize),
		// The Go shim pings every minute; the gRPC default policy would call that abuse.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if cfg.PeerTLS != nil {
		if r.certs, err = MintCerts(cfg.Advertise); err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(r.certs.ServerTLS())))
	}
	if r.lis, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("relay listen %s: %w", cfg.Listen, err)
	}
	_, port, _ := net.SplitHostPort(r.lis.Addr().String())
	r.addr = net.JoinHostPort(cfg.Advertise, port)
	r.srv = grpc.NewServer(opts...)
	pb.RegisterChaincodeSupportServer(r.srv, &service{r: r})
	return r, nil
}

// Addr is the address the chaincode dials.
func (r *Relay) Addr() string { return r.addr }

// Certs are the launch's certificates (nil with TLS off).
func (r *Relay) Certs() *Certs { return r.certs }

// Events reports milestones; it is never closed.
func (r *Relay) Events() <-chan Event { return r.events }

// Closing reports whether the relay itself is ending the streams (so the chaincode's
// exit that follows is expected).
func (r *Relay) Closing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

// Serve relays until the chaincode is idle (ErrIdle), a stream ends (its error), or
// ctx is cancelled: then it waits up to drain for transactions in flight before it
// closes (nil).
func (r *Relay) Serve(ctx context.Context, drain time.Duration) error {
	go func() { _ = r.srv.Serve(r.lis) }()
	defer func() {
		// Let the handler end both streams cleanly (CloseSend to the peer) before the
		// server cuts whatever is left.
		if r.isClaimed() {
			select {
			case <-r.handlerDone:
			case <-time.After(time.Second):
			}
		}
		r.srv.Stop()
	}()
	r.mu.Lock()
	r.started = time.Now()
	r.last = r.started
	r.mu.Unlock()

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-r.done:
			return err
		case <-ctx.Done():
			r.drain(drain)
			r.close()
			return nil
		case <-r.wake:
		case <-tick.C:
		}
		if r.idle() {
			r.cfg.Logf("idle: no transaction in flight, closing the chaincode and peer streams")
			r.close()
			return ErrIdle
		}
	}
}

func (r *Relay) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Until the chaincode has registered, the launch is under way (and bounded by the
	// launch timeout), not idle.
	if len(r.inflight) > 0 || r.closing || !r.registered {
		return false
	}
	quiet := time.Since(r.last)
	if r.served == 0 {
		// Launched with no transaction waiting (peer start, commit): give the first
		// transaction a fair chance to arrive.
		return quiet >= max(r.cfg.IdleTimeout, UnusedGrace)
	}
	return quiet >= r.cfg.IdleTimeout
}

// drain waits for transactions in flight to finish, up to d.
func (r *Relay) drain(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		n := len(r.inflight)
		r.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.cfg.Logf("stopping with transactions still in flight; the peer fails them")
}

// close ends both streams; the chaincode's Register call returns.
func (r *Relay) close() {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.closeOnce.Do(func() { close(r.closed) })
}

func (r *Relay) isClaimed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.claimed
}

// finish ends Serve with err (the first reason wins).
func (r *Relay) finish(err error) {
	select {
	case r.done <- err:
	default:
	}
}

func (r *Relay) event(e Event) {
	select {
	case r.events <- e:
	default:
	}
}

func txKey(m *pb.ChaincodeMessage) string { return m.ChannelId + "/" + m.Txid }

// fromPeer notes a message the peer sends to the chaincode.
func (r *Relay) fromPeer(m *pb.ChaincodeMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m.Type {
	case pb.ChaincodeMessage_KEEPALIVE:
		return
	case pb.ChaincodeMessage_TRANSACTION, pb.ChaincodeMessage_INIT:
		r.inflight[txKey(m)] = true
		if r.served == 0 {
			r.event(EventFirstTx)
		}
		r.served++
	case pb.ChaincodeMessage_REGISTERED:
		r.registered = true
		r.event(EventRegistered)
	}
	r.last = time.Now()
}

// fromChaincode notes a message the chaincode sends to the peer.
func (r *Relay) fromChaincode(m *pb.ChaincodeMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m.Type {
	case pb.ChaincodeMessage_KEEPALIVE:
		return
	case pb.ChaincodeMessage_COMPLETED, pb.ChaincodeMessage_ERROR:
		if r.inflight[txKey(m)] {
			delete(r.inflight, txKey(m))
			if len(r.inflight) == 0 && r.cfg.IdleTimeout == 0 {
				// Start, serve, exit: wake Serve now rather than at the next tick.
				select {
				case r.wake <- struct{}{}:
				default:
				}
			}
		}
	}
	r.last = time.Now()
}

// InFlight is the number of transactions the chaincode has not answered yet.
func (r *Relay) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inflight)
}

type service struct {
	pb.UnimplementedChaincodeSupportServer
	r *Relay
}

// Register relays one chaincode stream to the peer. A launch has exactly one chaincode.
func (s *service) Register(cc pb.ChaincodeSupport_RegisterServer) error {
	r := s.r
	r.mu.Lock()
	if r.claimed {
		r.mu.Unlock()
		return status.Error(codes.AlreadyExists, "this launch already has its chaincode")
	}
	r.claimed = true
	r.mu.Unlock()
	defer close(r.handlerDone)
	r.event(EventConnected)

	creds := insecure.NewCredentials()
	if r.cfg.PeerTLS != nil {
		creds = credentials.NewTLS(r.cfg.PeerTLS)
	}
	conn, err := grpc.NewClient(r.cfg.PeerAddress, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)))
	if err != nil {
		r.finish(fmt.Errorf("dial peer %s: %w", r.cfg.PeerAddress, err))
		return status.Error(codes.Unavailable, "peer unreachable")
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancel(cc.Context())
	defer cancel()
	peer, err := pb.NewChaincodeSupportClient(conn).Register(ctx)
	if err != nil {
		r.finish(fmt.Errorf("register with peer %s: %w", r.cfg.PeerAddress, err))
		return status.Error(codes.Unavailable, "peer refused the stream")
	}

	var sendMu sync.Mutex // guards peer.Send and peer.CloseSend
	ended := make(chan error, 2)
	go func() {
		for {
			m, err := cc.Recv()
			if err != nil {
				ended <- fmt.Errorf("chaincode stream ended: %w", err)
				return
			}
			r.fromChaincode(m)
			sendMu.Lock()
			err = peer.Send(m)
			sendMu.Unlock()
			if err != nil {
				ended <- fmt.Errorf("send to peer: %w", err)
				return
			}
		}
	}()
	go func() {
		for {
			m, err := peer.Recv()
			if err != nil {
				ended <- fmt.Errorf("peer stream ended: %w", err)
				return
			}
			r.fromPeer(m)
			if err := cc.Send(m); err != nil {
				ended <- fmt.Errorf("send to chaincode: %w", err)
				return
			}
		}
	}()

	select {
	case err := <-ended:
		if !r.Closing() {
			r.finish(err)
		}
	case <-r.closed:
	}
	sendMu.Lock()
	_ = peer.CloseSend()
	sendMu.Unlock()
	return nil
}
