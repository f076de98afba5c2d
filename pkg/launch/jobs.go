//go:build !podonly

package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/kubecc/kubecc/pkg/relay"
)

// JobMode says whether this binary can run job-mode (serverless) launches: the
// podonly build leaves the relay, and with it gRPC, out.
const JobMode = true

// runJobs runs a job-mode launch: the relay, and the Jobs it asks for.
func (l *Launcher) runJobs(ctx context.Context, name string) error {
	p := l.Params
	rl, err := l.newRelay()
	if err != nil {
		return err
	}
	// The chaincode dials the relay, with certificates minted for this launch.
	p.PeerAddress = rl.Addr()
	if c := rl.Certs(); c != nil {
		p.ClientCert, p.ClientKey, p.RootCert = string(c.ClientCertPEM), string(c.ClientKeyPEM), string(c.CAPEM)
	}
	secretName, err := l.startInstance(ctx, name)
	if err != nil {
		return err
	}
	return l.serveJobs(ctx, rl, name, secretName)
}

// serveJobs runs the relay and the Jobs it needs: the relay lets go of an idle
// chaincode (its Job is deleted: scale to zero) and asks for a new one when a
// transaction comes, while it stays registered with the peer.
func (l *Launcher) serveJobs(ctx context.Context, rl *relay.Relay, name, secret string) error {
	relayErr := make(chan error, 1)
	// On SIGTERM the relay lets the transaction in flight finish (the peer's SIGKILL
	// follows in 5 s, and deleting takes a moment).
	go func() { relayErr <- rl.Serve(ctx, 3*time.Second) }()
	go l.logRelayEvents(ctx, rl)
	cur := l.watchInstance(ctx, name, secret)
	end := func() {
		if cur != nil {
			cur.stop()
			l.deleteAll(cur.name, cur.secret)
			cur = nil
		}
	}
	start := func() error {
		// Phase times of this launch count from here, when a call asked for it.
		l.mu.Lock()
		l.start = time.Now()
		l.mu.Unlock()
		next := l.Params.NewName()
		s, err := l.startInstance(ctx, next)
		if err != nil {
			return err
		}
		cur = l.watchInstance(ctx, next, s)
		return nil
	}
	defer end()
	for {
		// Level-triggered: a Want read while the released chaincode was still current
		// was ignored, and its transaction must not wait for the peer's execute timeout.
		if cur == nil && rl.Waiting() {
			if err := start(); err != nil {
				return err
			}
		}
		var ended <-chan error
		if cur != nil {
			ended = cur.ended
		}
		select {
		case err := <-relayErr:
			if ctx.Err() != nil {
				l.logf("stopping: deleting the job and its secret")
				return nil
			}
			if errors.Is(err, relay.ErrIdle) {
				l.logf("idle: run exits; the peer calls it again on the next invoke (%s)", l.elapsed())
				return nil
			}
			return err
		case <-rl.Released():
			l.logf("idle: scaling to zero (%s)", l.elapsed())
			end()
		case <-rl.Want():
			// Handled at the top of the loop; a Want while a chaincode is starting is
			// for that one.
		case err := <-ended:
			if ctx.Err() != nil {
				// The drain after SIGTERM; after a stop the relay's error says nothing new.
				if err := <-relayErr; err != nil {
					l.logf("relay: %v", err)
				}
				return nil
			}
			select {
			case <-rl.Released(): // it ended because the relay let go of it
				l.logf("idle: scaling to zero (%s)", l.elapsed())
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

func (l *Launcher) logRelayEvents(ctx context.Context, rl *relay.Relay) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-rl.Events():
			l.logf("%s (%s)", e, l.elapsed())
		}
	}
}

// newRelay listens where config says (default: the peer's chaincode host, any port),
// so pods can reach it wherever they reach the peer.
func (l *Launcher) newRelay() (*relay.Relay, error) {
	p := l.Params
	listen := p.Config.RelayAddress
	peerHost, _, err := net.SplitHostPort(p.peerAddress())
	if err != nil {
		return nil, fmt.Errorf("peer address %q: %w", p.peerAddress(), err)
	}
	if listen == "" {
		listen = net.JoinHostPort(peerHost, "0")
	}
	host, _, _ := net.SplitHostPort(listen)
	advertise := host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		advertise = peerHost
	}
	cfg := relay.Config{Listen: listen, Advertise: advertise, PeerAddress: p.Run.PeerAddress, IdleTimeout: p.IdleTimeout, Linger: p.Config.RelayLinger.Duration, Logf: func(f string, a ...any) { l.logf("relay: "+f, a...) }}
	if p.Run.TLS() {
		if cfg.PeerTLS, err = relay.PeerTLS(p.Run.ClientCert, p.Run.ClientKey, p.Run.RootCert); err != nil {
			return nil, err
		}
	}
	return relay.New(cfg)
}
