package kube

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// apiServer answers like the Kubernetes API server for the requests the hooks make,
// and records each request line.
type apiServer struct {
	mu   sync.Mutex
	seen []string
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.seen = append(a.seen, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" "+r.Header.Get("Content-Type")+" "+string(body))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/v1/namespaces/ns/pods":
		var p corev1.Pod
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		p.UID = "uid-1"
		_ = json.NewEncoder(w).Encode(&p)
	case r.Method == "POST" && r.URL.Path == "/apis/batch/v1/namespaces/ns/jobs":
		_, _ = w.Write(body)
	case r.Method == "GET" && r.URL.Path == "/api/v1/namespaces/ns/pods/missing":
		w.WriteHeader(404)
		_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"pods \"missing\" not found"}`)
	case r.Method == "GET" && r.URL.Path == "/api/v1/namespaces/ns/pods" && r.URL.Query().Get("watch") == "true":
		ev := func(t watch.EventType, phase corev1.PodPhase) {
			b, _ := json.Marshal(map[string]any{"type": t, "object": corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: phase}}})
			_, _ = w.Write(append(b, '\n'))
			w.(http.Flusher).Flush()
		}
		ev(watch.Added, corev1.PodPending)
		ev(watch.Modified, corev1.PodRunning)
	case r.Method == "GET" && r.URL.Path == "/api/v1/namespaces/ns/pods":
		_, _ = io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}`)
	case r.Method == "GET" && r.URL.Path == "/api/v1/namespaces/ns/pods/p/log":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "line 1\nline 2\n")
	case r.Method == "PATCH" && r.URL.Path == "/api/v1/namespaces/ns/secrets/s":
		_, _ = io.WriteString(w, `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":"p","uid":"u"}]}}`)
	case r.Method == "DELETE":
		_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Success"}`)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.String(), 500)
	}
}

func TestClientSpeaksTheKubernetesAPI(t *testing.T) {
	api := &apiServer{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	c, err := New(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	p, err := c.Pods("ns").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}}}, metav1.CreateOptions{})
	if err != nil || p.UID != "uid-1" || p.Labels["a"] != "b" {
		t.Fatalf("create pod: %v %+v", err, p)
	}
	if _, err := c.Jobs("ns").Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create job: %v", err)
	}
	if _, err := c.Pods("ns").Get(ctx, "missing", metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), `pods "missing" not found`) {
		t.Fatalf("get of a missing pod: %v", err)
	}
	l, err := c.Pods("ns").List(ctx, metav1.ListOptions{LabelSelector: "app=x"})
	if err != nil || len(l.Items) != 2 || l.Items[1].Name != "b" {
		t.Fatalf("list: %v %+v", err, l)
	}
	w, err := c.Pods("ns").Watch(ctx, metav1.ListOptions{LabelSelector: "app=x"})
	if err != nil {
		t.Fatal(err)
	}
	var phases []corev1.PodPhase
	for ev := range w.ResultChan() {
		phases = append(phases, ev.Object.(*corev1.Pod).Status.Phase)
	}
	if len(phases) != 2 || phases[1] != corev1.PodRunning {
		t.Fatalf("watch saw %v", phases)
	}
	s, err := c.Secrets("ns").Patch(ctx, "s", types.MergePatchType, []byte(`{"metadata":{}}`), metav1.PatchOptions{})
	if err != nil || len(s.OwnerReferences) != 1 {
		t.Fatalf("patch: %v %+v", err, s)
	}
	zero := int64(0)
	if err := c.Pods("ns").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: "app=x"}); err != nil {
		t.Fatal(err)
	}
	bg := metav1.DeletePropagationBackground
	if err := c.Jobs("ns").Delete(ctx, "j", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	logs, err := c.PodLogs(ctx, "ns", "p", &corev1.PodLogOptions{Container: "cc", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(logs)
	_ = logs.Close()
	if string(b) != "line 1\nline 2\n" {
		t.Fatalf("logs %q", b)
	}

	want := []string{
		"POST /api/v1/namespaces/ns/pods? application/json",
		"POST /apis/batch/v1/namespaces/ns/jobs? application/json",
		"GET /api/v1/namespaces/ns/pods/missing? ",
		"GET /api/v1/namespaces/ns/pods?labelSelector=app%3Dx ",
		"GET /api/v1/namespaces/ns/pods?labelSelector=app%3Dx&watch=true ",
		"PATCH /api/v1/namespaces/ns/secrets/s? application/merge-patch+json {\"metadata\":{}}",
		"DELETE /api/v1/namespaces/ns/pods?labelSelector=app%3Dx application/json {\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"gracePeriodSeconds\":0}",
		"DELETE /apis/batch/v1/namespaces/ns/jobs/j? application/json {\"kind\":\"DeleteOptions\",\"apiVersion\":\"batch/v1\",\"propagationPolicy\":\"Background\"}",
		"GET /api/v1/namespaces/ns/pods/p/log?container=cc&follow=true ",
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.seen) != len(want) {
		t.Fatalf("%d requests, want %d:\n%s", len(api.seen), len(want), strings.Join(api.seen, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(strings.TrimSpace(api.seen[i]), strings.TrimSpace(w)) {
			t.Errorf("request %d:\n got %s\nwant %s", i, api.seen[i], w)
		}
	}
}
