package launch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/kube"
	"github.com/kubecc/kubecc/pkg/kube/clientset"
	"github.com/kubecc/kubecc/pkg/kube/kubetest"
	"github.com/kubecc/kubecc/pkg/podspec"
)

func params(t *testing.T, tls bool) *podspec.Params {
	t.Helper()
	cfg, err := config.Load(t.TempDir(), func(k string) (string, bool) {
		if k == "KUBECC_NAMESPACE" {
			return "cc", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	rc := &chaincode.RunConfig{ChaincodeID: "My_CC+1.0:" + strings.Repeat("ab", 32), PeerAddress: "peer0:7052", MSPID: "Org1MSP"}
	if tls {
		rc.ClientCert, rc.ClientKey, rc.RootCert = "CERT", "SECRET-KEY", "ROOT"
	}
	img := chaincode.ImageRef{Name: "reg/cc", Digest: "sha256:" + strings.Repeat("cd", 32)}
	p, err := podspec.Resolve(cfg, img, chaincode.BuildInfo{PeerAddressArg: true}, "kubecc.json", rc, "host")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// setStatus keeps writing a status onto the launch's pod until stop closes: the fake
// clientset delivers only events after the watch is open.
func setStatus(t *testing.T, kube *fake.Clientset, status corev1.PodStatus, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		pods, _ := kube.CoreV1().Pods("cc").List(context.Background(), metav1.ListOptions{})
		for i := range pods.Items {
			p := pods.Items[i]
			p.Status = status
			p.ResourceVersion = ""
			_, _ = kube.CoreV1().Pods("cc").UpdateStatus(context.Background(), &p, metav1.UpdateOptions{})
		}
	}
}

func leftovers(t *testing.T, kube *fake.Clientset) int {
	pods, _ := kube.CoreV1().Pods("cc").List(context.Background(), metav1.ListOptions{})
	secs, _ := kube.CoreV1().Secrets("cc").List(context.Background(), metav1.ListOptions{})
	return len(pods.Items) + len(secs.Items)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// runUntilExit3 runs a launch whose container ends with exit code 3 and checks that run
// exits with that code; it returns run's log.
func runUntilExit3(t *testing.T, kube *fake.Clientset, p *podspec.Params) string {
	t.Helper()
	stop := make(chan struct{})
	defer close(stop)
	go setStatus(t, kube, corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.ContainerName, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}}}}, stop)
	var log syncBuf
	err := (&Launcher{Kube: clientset.Wrap(kube), Params: p, Log: NewLog(&log)}).RunResident(context.Background())
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("run returned %v, want the container's exit code 3\n%s", err, log.String())
	}
	return log.String()
}

func TestRunExitsWithTheChaincodesCodeAndCleansUp(t *testing.T) {
	p := params(t, true)
	// A leftover of an earlier run of this peer and package.
	old := p.Pod("cc-old", "", nil)
	kube := kubetest.NewFake(old)
	log := runUntilExit3(t, kube, p)
	if n := leftovers(t, kube); n != 0 {
		t.Fatalf("%d objects left behind", n)
	}
	if strings.Contains(log, "SECRET-KEY") {
		t.Fatal("key in the log")
	}
}

func TestRunFailsFastOnImagePullErrors(t *testing.T) {
	p := params(t, true)
	kube := kubetest.NewFake()
	stop := make(chan struct{})
	defer close(stop)
	go setStatus(t, kube, corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.ContainerName, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "manifest unknown"}}}}}, stop)
	err := (&Launcher{Kube: clientset.Wrap(kube), Params: p, Log: NewLog(&syncBuf{})}).RunResident(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ErrImagePull: manifest unknown") {
		t.Fatalf("run returned %v", err)
	}
	if n := leftovers(t, kube); n != 0 {
		t.Fatalf("%d objects left behind", n)
	}
}

func TestRunDeletesEverythingWhenStopped(t *testing.T) {
	p := params(t, true)
	kube := kubetest.NewFake()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for leftovers(t, kube) < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel() // what SIGTERM from the peer does
	}()
	if err := (&Launcher{Kube: clientset.Wrap(kube), Params: p, Log: NewLog(&syncBuf{})}).RunResident(ctx); err != nil {
		t.Fatalf("run returned %v after a stop", err)
	}
	if n := leftovers(t, kube); n != 0 {
		t.Fatalf("%d objects left behind", n)
	}
}

func TestRunRidesOutAnUnreachableAPIServer(t *testing.T) {
	p := params(t, true)
	kube := kubetest.NewFake()
	// The API server answers none of the launch's first three watch and list requests
	// (the test's own status writer lists without a selector, and is served).
	var failed int
	var mu sync.Mutex
	down := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if failed < 3 {
			failed++
			return true
		}
		return false
	}
	kube.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		if down() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	kube.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !a.(k8stesting.ListAction).GetListRestrictions().Labels.Empty() && down() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	log := runUntilExit3(t, kube, p)
	if got := strings.Count(log, "retrying in"); got != 3 {
		t.Fatalf("%d watch retries logged, want 3:\n%s", got, log)
	}
	if n := leftovers(t, kube); n != 0 {
		t.Fatalf("%d objects left behind", n)
	}
}

// brokenLogs serves a log that breaks after two lines, then, asked again since the
// second line's second, the whole log: what a kube-apiserver restart does to a follow.
type brokenLogs struct {
	kube.Client
	calls []*corev1.PodLogOptions
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func (b *brokenLogs) PodLogs(_ context.Context, _, _ string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	b.calls = append(b.calls, opts)
	all := "2026-11-24T00:00:01.100000000Z first\n2026-11-24T00:00:01.2Z second\n2026-11-24T00:00:02.000000001Z third\n"
	if len(b.calls) == 1 {
		lines := strings.SplitAfter(all, "\n")
		return io.NopCloser(&failingReader{strings.NewReader(lines[0] + lines[1]), io.ErrUnexpectedEOF}), nil
	}
	return io.NopCloser(strings.NewReader(all)), nil
}

func TestChaincodeLogResumesAfterABreakWithoutRepeats(t *testing.T) {
	var log syncBuf
	logs := &brokenLogs{Client: clientset.Wrap(kubetest.NewFake())}
	l := NewLog(&log)
	StreamLogs(context.Background(), logs, "cc", "pod1", podspec.ContainerName, l, func(line string) { l.Chaincode("pod1", line) })
	want := "chaincode pod1: first\nchaincode pod1: second\n"
	got := log.String()
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "chaincode pod1: third\n") || strings.Count(got, "chaincode pod1:") != 3 {
		t.Fatalf("log:\n%s", got)
	}
	if !strings.Contains(got, "unexpected EOF; resuming") {
		t.Fatalf("the break was not logged:\n%s", got)
	}
	if len(logs.calls) != 2 || !logs.calls[0].Timestamps || logs.calls[1].SinceTime == nil || logs.calls[1].SinceTime.Unix() != time.Date(2026, 11, 24, 0, 0, 1, 0, time.UTC).Unix() {
		t.Fatalf("log requests %+v", logs.calls)
	}
}

func TestCreateRetriesAnUnansweredAPIServerButNotARefusal(t *testing.T) {
	p := params(t, false)
	kube := kubetest.NewFake()
	var creates int
	kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		creates++
		switch creates {
		case 1:
			return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
		case 2:
			// The pod is created, but the answer is lost.
			if err := kube.Tracker().Create(corev1.SchemeGroupVersion.WithResource("pods"), a.(k8stesting.CreateAction).GetObject(), a.GetNamespace()); err != nil {
				return true, nil, err
			}
			return true, nil, io.ErrUnexpectedEOF
		}
		return false, nil, nil
	})
	if log := runUntilExit3(t, kube, p); creates != 3 || strings.Count(log, "retrying in") != 2 {
		t.Fatalf("%d creates, log:\n%s", creates, log)
	}

	// A refusal is final: no retry, and nothing left behind.
	kube = kubetest.NewFake()
	creates = 0
	kube.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		creates++
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "x", errors.New("RBAC"))
	})
	err := (&Launcher{Kube: clientset.Wrap(kube), Params: params(t, true), Log: NewLog(&syncBuf{})}).RunResident(context.Background())
	if err == nil || !strings.Contains(err.Error(), "forbidden") || creates != 1 {
		t.Fatalf("run returned %v after %d creates", err, creates)
	}
	if n := leftovers(t, kube); n != 0 {
		t.Fatalf("%d objects left behind", n)
	}
}

// A pod deleted while the watch was broken is noticed when the watch comes back.
func TestPodDeletedWhileTheWatchWasDownIsNoticed(t *testing.T) {
	p := params(t, false)
	kube := kubetest.NewFake()
	first := watch.NewFake()
	var calls int
	var mu sync.Mutex
	kube.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return true, first, nil
		}
		return false, nil, nil
	})
	l := &Launcher{Kube: clientset.Wrap(kube), Params: p, Log: NewLog(&syncBuf{})}
	in, err := l.Start(context.Background(), p.NewName())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background(), in) }()
	pod, err := kube.CoreV1().Pods("cc").Get(context.Background(), in.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.ContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	first.Add(pod)
	// The watch breaks (an expired version after an outage), and meanwhile the pod goes.
	if err := kube.CoreV1().Pods("cc").Delete(context.Background(), in.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	first.Error(&metav1.Status{Reason: metav1.StatusReasonExpired})
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "was deleted") {
			t.Fatalf("wait returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the deletion during the outage went unnoticed")
	}
}

// A launch's objects are deleted even when the API server does not answer at first.
func TestDeleteRetriesAnUnansweredAPIServer(t *testing.T) {
	p := params(t, true)
	kube := kubetest.NewFake()
	var failed int
	var mu sync.Mutex
	kube.PrependReactor("delete", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if failed < 2 {
			failed++
			return true, nil, apierrors.NewServiceUnavailable("apiserver restarting")
		}
		return false, nil, nil
	})
	var log syncBuf
	l := &Launcher{Kube: clientset.Wrap(kube), Params: p, Log: NewLog(&log)}
	in, err := l.Start(context.Background(), p.NewName())
	if err != nil {
		t.Fatal(err)
	}
	l.Delete(context.Background(), in)
	if n := leftovers(t, kube); n != 0 {
		t.Fatalf("%d objects left behind:\n%s", n, log.String())
	}
	if got := strings.Count(log.String(), "retrying in"); got != 2 {
		t.Fatalf("%d delete retries logged, want 2:\n%s", got, log.String())
	}
}
