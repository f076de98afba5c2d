package serverless

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	ccpkg "github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/launch"
	"github.com/kubecc/kubecc/pkg/podspec"
)

// relayPort is what the job loop needs of a relay.
type relayPort interface {
	Serve(ctx context.Context, drain time.Duration) error
	Events() <-chan Event
	Want() <-chan struct{}
	Released() <-chan struct{}
	Waiting() bool
}

// instances starts, follows and deletes the chaincode's Jobs (launch.Launcher).
type instances interface {
	Start(ctx context.Context, name string) (*launch.Instance, error)
	Wait(ctx context.Context, in *launch.Instance) error
	Delete(ctx context.Context, in *launch.Instance)
}

// drainTime is how long a stopping relay lets the transaction in flight finish: the
// peer's SIGKILL follows SIGTERM in 5 s, and deleting takes a moment.
const drainTime = 3 * time.Second

// Run runs a serverless launch: the relay, and the Jobs it asks for. p says how the
// chaincode runs; rc is the peer's chaincode.json, whose address and certificate the
// relay dials the peer with. host names this machine (the peer Pod in a cluster).
func Run(ctx context.Context, kc kube.Client, p *podspec.Params, rc *ccpkg.RunConfig, log *launch.Log, host string) error {
	rl, err := newRelay(p, rc, log)
	if err != nil {
		return err
	}
	// The chaincode dials the relay, with certificates minted for this launch.
	var tls *podspec.TLS
	if c := rl.Certs(); c != nil {
		tls = &podspec.TLS{ClientCert: string(c.ClientCertPEM), ClientKey: string(c.ClientKeyPEM), RootCert: string(c.CAPEM)}
	}
	q := p.Dialing(rl.Addr(), tls)
	l := &launch.Launcher{Kube: kc, Params: q, Log: log, PeerPod: launch.FindPeerPod(ctx, kc, q.Config, host)}
	first, err := l.Start(ctx, q.NewName())
	if err != nil {
		return err
	}
	swept := l.SweepLeftovers(ctx, first.Name)
	defer swept()
	return (&loop{relay: rl, inst: l, log: log, newName: q.NewName}).serve(ctx, first)
}

// newRelay listens where config says (default: the host the chaincode dials the peer
// at, any port), so pods can reach it wherever they reach the peer.
func newRelay(p *podspec.Params, rc *ccpkg.RunConfig, log *launch.Log) (*Relay, error) {
	peerHost, err := p.PeerHost()
	if err != nil {
		return nil, err
	}
	listen := p.Config.RelayAddress
	if listen == "" {
		listen = net.JoinHostPort(peerHost, "0")
	}
	host, _, _ := net.SplitHostPort(listen)
	advertise := host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		advertise = peerHost
	}
	cfg := Config{Listen: listen, Advertise: advertise, PeerAddress: rc.PeerAddress, IdleTimeout: p.IdleTimeout, Linger: p.Config.RelayLinger.Duration,
		Logf: func(f string, a ...any) { log.Printf("relay: "+f, a...) }}
	if rc.TLS() {
		if cfg.PeerTLS, err = PeerTLS(rc.ClientCert, rc.ClientKey, rc.RootCert); err != nil {
			return nil, fmt.Errorf("chaincode.json TLS material: %w", err)
		}
	}
	return New(cfg)
}

// loop keeps one Job behind the relay while the relay wants a chaincode: the relay
// lets go of an idle chaincode (its Job is deleted: scale to zero) and asks for a new
// one when a transaction comes, while it stays registered with the peer.
type loop struct {
	relay   relayPort
	inst    instances
	log     *launch.Log
	newName func() string
}

// current is the running instance and the end of its Wait: its error on ended
// (buffered: the loop may not read it), then done closes.
type current struct {
	in    *launch.Instance
	stop  context.CancelFunc
	ended chan error
	done  chan struct{}
}

func (lp *loop) follow(ctx context.Context, in *launch.Instance) *current {
	wctx, stop := context.WithCancel(ctx)
	c := &current{in: in, stop: stop, ended: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.ended <- lp.inst.Wait(wctx, in)
	}()
	return c
}

func (lp *loop) serve(ctx context.Context, first *launch.Instance) error {
	relayErr := make(chan error, 1)
	go func() { relayErr <- lp.relay.Serve(ctx, drainTime) }()
	go lp.logEvents(ctx)
	cur := lp.follow(ctx, first)
	end := func() {
		if cur != nil {
			cur.stop()
			<-cur.done // its pod is no longer followed while it goes
			lp.inst.Delete(ctx, cur.in)
			cur = nil
		}
	}
	defer end()
	for {
		// Level-triggered: a Want read while the released chaincode was still current
		// was ignored, and its transaction must not wait for the peer's execute timeout.
		if cur == nil && lp.relay.Waiting() {
			// Phase times of this instance count from here, when a call asked for it.
			lp.log.Restart()
			in, err := lp.inst.Start(ctx, lp.newName())
			if err != nil {
				return err
			}
			cur = lp.follow(ctx, in)
		}
		var ended <-chan error
		if cur != nil {
			ended = cur.ended
		}
		select {
		case err := <-relayErr:
			if ctx.Err() != nil {
				lp.log.Printf("stopping: deleting the job and its secret")
				return nil
			}
			if errors.Is(err, ErrIdle) {
				lp.log.Printf("idle: run exits; the peer calls it again on the next invoke (%s)", lp.log.Elapsed())
				return nil
			}
			return err
		case <-lp.relay.Released():
			lp.log.Printf("idle: scaling to zero (%s)", lp.log.Elapsed())
			end()
		case <-lp.relay.Want():
			// Handled at the top of the loop; a Want while a chaincode is starting is
			// for that one.
		case err := <-ended:
			if ctx.Err() != nil {
				// The drain after SIGTERM; after a stop the relay's error says nothing new.
				if err := <-relayErr; err != nil {
					lp.log.Printf("relay: %v", err)
				}
				return nil
			}
			select {
			case <-lp.relay.Released(): // it ended because the relay let go of it
				lp.log.Printf("idle: scaling to zero (%s)", lp.log.Elapsed())
				end()
				continue
			default:
			}
			// The chaincode ended while attached, or its pod failed to start: run
			// exits and the relay ends the peer stream, so the peer does not wait on it.
			return err
		}
	}
}

func (lp *loop) logEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-lp.relay.Events():
			lp.log.Printf("%s (%s)", e, lp.log.Elapsed())
		}
	}
}
