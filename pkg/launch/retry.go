package launch

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubecc/kubecc/pkg/kube"
)

// backoff doubles a retry delay from 100 ms up to 5 s.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, 100*time.Millisecond), 5*time.Second)
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

// sleep waits d or until ctx ends, and says whether the whole d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// createPatience is how long a create waits for an unreachable or overloaded API
// server: less than the peer's default execute timeout (30 s), so a call that waits in
// the relay for a new chaincode can still be served once the API server is back.
const createPatience = 20 * time.Second

// createRetrying creates obj, retrying while the API server does not answer or says
// it is overloaded. If a lost answer hid that an earlier try worked, the object is
// fetched instead when fetch is set (Secrets are not: the launcher's Role may create
// Secrets but not read them), else obj is returned as sent.
func createRetrying[T runtime.Object, L runtime.Object](ctx context.Context, log *Log, r kube.Resource[T, L], obj T, name string, fetch bool) (T, error) {
	var retry backoff
	deadline := time.Now().Add(createPatience)
	retried := false
	for {
		created, err := r.Create(ctx, obj, metav1.CreateOptions{})
		if err == nil {
			return created, nil
		}
		if retried && apierrors.IsAlreadyExists(err) {
			if !fetch {
				return obj, nil
			}
			return r.Get(ctx, name, metav1.GetOptions{})
		}
		if !transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return created, err
		}
		retried = true
		d := retry.next()
		log.Printf("warning: create %s: %v; retrying in %s", name, err, d)
		if !sleep(ctx, d) {
			return created, ctx.Err()
		}
	}
}

// transient reports whether a request may work if tried again: the API server did not
// answer, or answered 429 or 5xx.
func transient(err error) bool {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		code := st.Status().Code
		return code == 429 || code >= 500
	}
	return true
}

// ignoreNotFound drops the error of deleting what is already gone.
func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
