// Package serverless runs chaincode that scales to zero. Its Relay is the
// transaction-aware proxy that makes this work with a stock peer. The chaincode dials
// the relay (inside run); the relay dials the peer with the peer-minted certificate
// and passes ChaincodeMessages both ways, counting transactions in flight.
//
// The relay keeps its stream to the peer while the chaincode comes and goes: when no
// transaction is in flight and nothing happened for the idle timeout, it lets go of
// the chaincode (its pod is deleted: scale to zero) but stays registered with the peer.
// A transaction that arrives then waits in the relay while a new pod starts; the new
// chaincode is greeted as the peer greeted the first one, and the transaction goes to
// it. The peer never sees the chaincode leave, so no call can race an idle exit. After
// a longer quiet spell (Linger) the relay ends the peer stream too and run exits; the
// peer calls run again on the next invoke.
package serverless

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
	"google.golang.org/protobuf/proto"
)

// maxMsgSize matches the peer's and the shims' limit.
const maxMsgSize = 100 << 20

// UnusedGrace is the least time a chaincode waits for its first transaction after it
// registered: the peer launches every chaincode at start and at commit, and one that
// is never called must not stay forever, but one launched by an invoke must live to
// serve it.
const UnusedGrace = 10 * time.Second

// DefaultLinger is how long a relay with no chaincode stays registered with the peer.
const DefaultLinger = 2 * time.Minute

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
	// IdleTimeout: 0 lets go of the chaincode after each burst of transactions; N after N without any.
	IdleTimeout time.Duration
	// Linger is how long the relay stays registered with no chaincode before it ends
	// the peer stream (default DefaultLinger; negative: end it together with the chaincode).
	Linger time.Duration
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
	EventReattached Event = "chaincode attached to the peer stream"
)

// ErrIdle ends Serve when the relay lingered without a chaincode for Linger.
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

	// want is signalled when a peer message waits for a chaincode; released when the
	// relay let go of one.
	want     chan struct{}
	released chan struct{}
	// wake tells Serve (and drain) to look again: something changed that can bring
	// the next idle or linger deadline forward, or lift what held it back.
	wake chan struct{}

	// peerSendMu serialises sends on the peer stream: gRPC allows one sender at a
	// time, and the registration, the chaincode's reader and shutdown all send.
	peerSendMu sync.Mutex

	// mu guards the fields from here to closing, and the queues of attachments.
	mu         sync.Mutex
	peer       pb.ChaincodeSupport_RegisterClient
	peerConn   *grpc.ClientConn
	greeting   []*pb.ChaincodeMessage // REGISTERED and READY, as the peer sent them
	cc         *attachment
	pending    []*pb.ChaincodeMessage
	inflight   map[string]bool
	last       time.Time
	detachedAt time.Time
	served     int
	registered bool
	closing    bool

	// stopping is cancelled once shutdown has set closing: handlers return, and a
	// registration with the peer still under way gives up.
	stopping context.Context
	stop     context.CancelFunc
}

// attachment is one chaincode connection.
//
// Messages for it go through queue, in the order they were decided under Relay.mu,
// and are sent outside the lock by whoever set sending: one goroutine at a time, so
// the order holds and a chaincode slow to read never blocks the relay's state.
type attachment struct {
	stream pb.ChaincodeSupport_RegisterServer
	done   chan struct{} // closed when the relay lets go of it
	once   sync.Once

	// Guarded by Relay.mu.
	queue   []*pb.ChaincodeMessage
	sending bool
}

func (a *attachment) release() { a.once.Do(func() { close(a.done) }) }

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
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	r := &Relay{cfg: cfg, events: make(chan Event, 16), done: make(chan error, 1), inflight: map[string]bool{},
		want: make(chan struct{}, 1), released: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	r.stopping, r.stop = context.WithCancel(context.Background())
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

// Want fires when a transaction waits for a chaincode: start one.
func (r *Relay) Want() <-chan struct{} { return r.want }

// Released fires when the relay let go of an idle chaincode: its pod can go.
func (r *Relay) Released() <-chan struct{} { return r.released }

// Waiting reports whether peer messages wait for a chaincode that is not attached.
// Want is an edge (one signal for a burst, dropped while one is unread); Waiting is
// the level a launcher checks whenever it has no chaincode starting, so that a call
// that arrives while the last chaincode is being let go still gets a new one.
func (r *Relay) Waiting() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cc == nil && len(r.pending) > 0
}

// Attached reports whether a chaincode is connected now.
func (r *Relay) Attached() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cc != nil
}

// Closing reports whether the relay itself is ending the streams.
func (r *Relay) Closing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

// InFlight is the number of transactions the chaincode has not answered yet.
func (r *Relay) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inflight)
}

// Serve relays until the relay lingered without a chaincode for Linger (ErrIdle), a
// stream ends unexpectedly (its error), or ctx is cancelled: then it waits up to drain
// for transactions in flight before it closes (nil).
func (r *Relay) Serve(ctx context.Context, drain time.Duration) error {
	go func() { _ = r.srv.Serve(r.lis) }()
	defer r.shutdown()
	r.mu.Lock()
	r.last = time.Now()
	r.mu.Unlock()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		verdict, next := r.check()
		switch verdict {
		case "release":
			r.cfg.Logf("idle: no transaction in flight; letting go of the chaincode (the peer stream stays)")
			continue // the linger deadline starts now
		case "end":
			r.cfg.Logf("no chaincode for %s: ending the peer stream", r.cfg.Linger)
			return ErrIdle
		}
		var fire <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			fire = timer.C
		}
		select {
		case err := <-r.done:
			return err
		case <-ctx.Done():
			r.drain(drain)
			return nil
		case <-r.wake:
		case <-fire:
		}
	}
}

// check lets go of an idle chaincode, or says the relay has lingered long enough.
// Otherwise it returns when to look again; zero means not before a wake-up, as
// something in progress (a transaction, a send, the registration) holds both
// deadlines back.
func (r *Relay) check() (string, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing || !r.registered || len(r.inflight) > 0 || len(r.pending) > 0 {
		return "", time.Time{}
	}
	now := time.Now()
	if r.cc == nil {
		if r.cfg.Linger < 0 {
			return "end", time.Time{}
		}
		if end := r.detachedAt.Add(r.cfg.Linger); now.Before(end) {
			return "", end
		}
		return "end", time.Time{}
	}
	if r.cc.sending || len(r.cc.queue) > 0 {
		// Letting go now would cut a message on its way to the chaincode.
		return "", time.Time{}
	}
	wait := r.cfg.IdleTimeout
	if r.served == 0 {
		// Launched with no transaction waiting (peer start, commit): give the first
		// transaction a fair chance to arrive.
		wait = max(wait, UnusedGrace)
	}
	if deadline := r.last.Add(wait); now.Before(deadline) {
		return "", deadline
	}
	// Under the lock: a peer message from now on waits in pending for a new chaincode,
	// and Released fires before any Want for that message can.
	r.cc.release()
	r.cc = nil
	r.detachedAt = now
	if r.cfg.Linger < 0 {
		return "end", time.Time{}
	}
	select {
	case r.released <- struct{}{}:
	default:
	}
	return "release", time.Time{}
}

// poke wakes Serve or drain. Activity that only pushes the idle deadline later needs
// no poke: the timer then fires early and check arms it again, which costs less than
// a wake-up for every message.
func (r *Relay) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// drain waits for transactions in flight to finish, up to d.
func (r *Relay) drain(d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for r.InFlight() > 0 {
		select {
		case <-r.wake: // among others, when the last transaction in flight completed
		case <-deadline.C:
			r.cfg.Logf("stopping with transactions still in flight; the peer fails them")
			return
		}
	}
}

// shutdown ends both streams and the server.
func (r *Relay) shutdown() {
	r.mu.Lock()
	r.closing = true
	cc := r.cc
	r.cc = nil
	// A peer stream opened after this point is closed by openPeer, which sees closing.
	peer, conn := r.peer, r.peerConn
	r.mu.Unlock()
	r.stop()
	if cc != nil {
		cc.release()
	}
	if peer != nil {
		r.peerSendMu.Lock()
		_ = peer.CloseSend()
		r.peerSendMu.Unlock()
	}
	// Let the handlers return (the chaincode sees its stream end) before the server
	// cuts whatever is left.
	stopped := make(chan struct{})
	go func() { r.srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Second):
		r.srv.Stop()
	}
	if conn != nil {
		_ = conn.Close()
	}
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

// fromPeer notes a message from the peer and puts it where it goes: in the attached
// chaincode's queue, or in pending (and a chaincode is wanted). It returns the
// attachment when the caller must send its queue; nil when the message waits, or the
// goroutine already sending to that chaincode sends it after what came before.
func (r *Relay) fromPeer(m *pb.ChaincodeMessage) *attachment {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m.Type {
	case pb.ChaincodeMessage_KEEPALIVE:
	case pb.ChaincodeMessage_TRANSACTION, pb.ChaincodeMessage_INIT:
		r.inflight[txKey(m)] = true
		if r.served == 0 {
			r.event(EventFirstTx)
		}
		r.served++
		r.last = time.Now()
	case pb.ChaincodeMessage_REGISTERED, pb.ChaincodeMessage_READY:
		if !r.registered {
			r.greeting = append(r.greeting, proto.Clone(m).(*pb.ChaincodeMessage))
			if m.Type == pb.ChaincodeMessage_REGISTERED {
				r.event(EventRegistered)
			} else {
				r.registered = true
				r.poke()
			}
		}
		r.last = time.Now()
	default:
		r.last = time.Now()
	}
	if r.cc == nil {
		if m.Type == pb.ChaincodeMessage_KEEPALIVE {
			return nil // nothing to answer for a chaincode that is not there
		}
		r.pending = append(r.pending, m)
		select {
		case r.want <- struct{}{}:
		default:
		}
		return nil
	}
	r.cc.queue = append(r.cc.queue, m)
	if r.cc.sending {
		return nil
	}
	r.cc.sending = true
	return r.cc
}

// flush sends a's queue in order until it is empty. Only the goroutine that set
// a.sending calls it. On a failed send the unsent messages stay queued and sending
// stays set: the stream is broken, and nobody else may send on it.
func (r *Relay) flush(a *attachment) error {
	for {
		r.mu.Lock()
		batch := a.queue
		a.queue = nil
		if len(batch) == 0 || released(a) {
			// Released only on shutdown: check lets go of no chaincode with a send
			// under way, and after that nothing is queued for it.
			a.sending = false
			if len(r.inflight) == 0 {
				r.poke() // check may have waited for this send to let go of the chaincode
			}
			r.mu.Unlock()
			return nil
		}
		r.mu.Unlock()
		for i, m := range batch {
			if err := a.stream.Send(m); err != nil {
				r.mu.Lock()
				a.queue = append(batch[i:], a.queue...)
				r.mu.Unlock()
				return fmt.Errorf("send %s to chaincode: %w", m.Type, err)
			}
		}
	}
}

// unattach undoes the attachment of a chaincode that failed before it took what
// waited for it: what it was not sent waits for the next one, as if it never came.
func (r *Relay) unattach(a *attachment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a.release()
	if r.cc != a {
		return // shutdown took it
	}
	r.cc = nil
	for _, m := range a.queue {
		if m.Type != pb.ChaincodeMessage_KEEPALIVE {
			r.pending = append(r.pending, m)
		}
	}
	a.queue = nil
	if len(r.pending) > 0 {
		select {
		case r.want <- struct{}{}:
		default:
		}
	}
	r.poke()
}

// fromChaincode notes a message the chaincode sends to the peer.
func (r *Relay) fromChaincode(m *pb.ChaincodeMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m.Type {
	case pb.ChaincodeMessage_KEEPALIVE:
		return
	case pb.ChaincodeMessage_COMPLETED, pb.ChaincodeMessage_ERROR:
		delete(r.inflight, txKey(m))
		if len(r.inflight) == 0 {
			r.poke()
		}
	}
	r.last = time.Now()
}

func (r *Relay) sendPeer(peer pb.ChaincodeSupport_RegisterClient, m *pb.ChaincodeMessage) error {
	r.peerSendMu.Lock()
	defer r.peerSendMu.Unlock()
	return peer.Send(m)
}

// openPeer registers with the peer on behalf of the first chaincode.
func (r *Relay) openPeer(register *pb.ChaincodeMessage) (pb.ChaincodeSupport_RegisterClient, error) {
	creds := insecure.NewCredentials()
	if r.cfg.PeerTLS != nil {
		creds = credentials.NewTLS(r.cfg.PeerTLS)
	}
	conn, err := grpc.NewClient(r.cfg.PeerAddress, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)))
	if err != nil {
		return nil, fmt.Errorf("dial peer %s: %w", r.cfg.PeerAddress, err)
	}
	// shutdown waits for this handler, so a stop must not wait for a peer slow to
	// answer. Once registered, the stream outlives the stop, which ends it with
	// CloseSend: the peer then sees the chaincode leave cleanly.
	ctx, cancel := context.WithCancel(context.Background())
	unwatch := context.AfterFunc(r.stopping, cancel)
	stream, err := pb.NewChaincodeSupportClient(conn).Register(ctx)
	unwatch()
	if err != nil {
		cancel()
		_ = conn.Close()
		return nil, fmt.Errorf("register with peer %s: %w", r.cfg.PeerAddress, err)
	}
	r.mu.Lock()
	if r.closing {
		// shutdown has already looked for a connection to close: this one is ours to
		// close, or the peer would keep a chaincode nobody serves.
		r.mu.Unlock()
		cancel()
		_ = conn.Close()
		return nil, fmt.Errorf("register with peer %s: the relay is stopping", r.cfg.PeerAddress)
	}
	r.peer, r.peerConn = stream, conn
	r.mu.Unlock()
	if err := r.sendPeer(stream, register); err != nil {
		return nil, fmt.Errorf("register with peer %s: %w", r.cfg.PeerAddress, err)
	}
	go r.readPeer(stream)
	return stream, nil
}

// readPeer passes the peer's messages to whichever chaincode is attached.
func (r *Relay) readPeer(peer pb.ChaincodeSupport_RegisterClient) {
	for {
		m, err := peer.Recv()
		if err != nil {
			if !r.Closing() {
				r.finish(fmt.Errorf("peer stream ended: %w", err))
			}
			return
		}
		if a := r.fromPeer(m); a != nil {
			if err := r.flush(a); err != nil {
				r.finish(err)
				return
			}
		}
	}
}

type service struct {
	pb.UnimplementedChaincodeSupportServer
	r *Relay
}

// Register attaches one chaincode. The first registers with the peer; later ones (new
// pods after the relay let go of an idle one) get the peer's greeting from the relay
// and the messages that waited for them.
func (s *service) Register(cc pb.ChaincodeSupport_RegisterServer) error {
	r := s.r
	first, err := cc.Recv()
	if err != nil {
		return err
	}
	if first.Type != pb.ChaincodeMessage_REGISTER {
		return status.Errorf(codes.InvalidArgument, "want REGISTER first, got %s", first.Type)
	}
	att := &attachment{stream: cc, done: make(chan struct{})}
	r.mu.Lock()
	if r.cc != nil || r.closing {
		r.mu.Unlock()
		return status.Error(codes.AlreadyExists, "this launch already has its chaincode")
	}
	peer, greeting := r.peer, r.greeting
	r.cc = att
	if peer != nil {
		// What waited goes first, and the peer messages from now on queue behind it;
		// this goroutine sends them all, after the greeting, outside the lock.
		att.queue, r.pending = r.pending, nil
		att.sending = true
	}
	r.mu.Unlock()
	r.poke() // a deadline Serve armed while no chaincode was attached is stale
	reattach := peer != nil
	if !reattach {
		r.event(EventConnected)
		if peer, err = r.openPeer(first); err != nil {
			r.finish(err)
			return status.Error(codes.Unavailable, "peer unreachable")
		}
	}

	// Read the chaincode before the backlog is sent: it may answer the first
	// transactions while later ones are still on their way.
	ended := make(chan error, 1)
	go func() {
		for {
			m, err := cc.Recv()
			if err != nil {
				ended <- err
				return
			}
			r.fromChaincode(m)
			if err := r.sendPeer(peer, m); err != nil {
				ended <- fmt.Errorf("send to peer: %w", err)
				return
			}
		}
	}()
	if reattach {
		err := greet(att, greeting)
		if err == nil {
			err = r.flush(att)
		}
		if err != nil {
			r.unattach(att)
			return err
		}
		r.event(EventConnected)
		r.event(EventReattached)
	}

	select {
	case <-att.done: // the relay let go of it (idle, or shutting down)
	case <-r.stopping.Done():
	case err := <-ended:
		// The chaincode left on its own: the peer must learn that it is gone, or its
		// transactions would wait for the execute timeout.
		if !r.Closing() && !released(att) {
			r.finish(fmt.Errorf("chaincode stream ended: %w", err))
		}
	}
	return nil
}

// greet sends a new chaincode the REGISTERED and READY the peer sent the first one.
func greet(a *attachment, greeting []*pb.ChaincodeMessage) error {
	for _, g := range greeting {
		if err := a.stream.Send(g); err != nil {
			return fmt.Errorf("greet chaincode with %s: %w", g.Type, err)
		}
	}
	return nil
}

func released(a *attachment) bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}
