package launch

import (
	"bufio"
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecc/kubecc/pkg/kube"
)

// StreamLogs passes each line of a container's log to out, until the log ends (the
// container exited) or ctx does: the chaincode's log goes to run's stderr, which the
// peer logs. A stream that breaks (the API server restarted) is resumed from the last
// line's timestamp, so a chaincode that outlives the break keeps its log in the peer's.
func StreamLogs(ctx context.Context, kc kube.Client, ns, pod, container string, log *Log, out func(line string)) {
	var last time.Time
	var retry backoff
	for {
		opts := &corev1.PodLogOptions{Container: container, Follow: true, Timestamps: true}
		if !last.IsZero() {
			opts.SinceTime = &metav1.Time{Time: last} // whole seconds: lines up to last are skipped below
		}
		err := copyLog(ctx, kc, ns, pod, opts, &last, out)
		if err == nil || ctx.Err() != nil {
			return
		}
		d := retry.next()
		log.Printf("warning: log of %s: %v; resuming in %s", pod, err, d)
		if !sleep(ctx, d) {
			return
		}
	}
}

// copyLog copies one log stream, skipping lines not after last and advancing it. It
// returns nil when the log ended (the container exited) and an error when the stream
// could not open or broke.
func copyLog(ctx context.Context, kc kube.Client, ns, pod string, opts *corev1.PodLogOptions, last *time.Time, out func(string)) error {
	stream, err := kc.PodLogs(ctx, ns, pod, opts)
	if err != nil {
		return err
	}
	defer func() { _ = stream.Close() }()
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if ts, rest, ok := strings.Cut(line, " "); ok {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				if !t.After(*last) {
					continue // printed before the stream broke
				}
				*last, line = t, rest
			}
		}
		out(line)
	}
	return sc.Err()
}
