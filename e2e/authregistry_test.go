//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// authRegistry is the harness registry behind HTTP basic auth, the way the registry's
// own documentation puts one behind a proxy: the client side is what kubecc, the
// kubelet and containerd meet at a private registry.
type authRegistry struct {
	Addr     string // host:port, as pods and the hooks reach it
	User     string
	Password string
	// DockerConfig is the Docker config file that logs in to it (0600, e2e/up.sh).
	DockerConfig []byte
}

// startAuthRegistry serves the registry at upstream (host:port) behind basic auth at
// addr, with the credentials of the Docker config file at configPath, until the test
// ends.
func startAuthRegistry(t *testing.T, addr, upstream, configPath string) *authRegistry {
	t.Helper()
	data, err := os.ReadFile(configPath)
	if err != nil {
		t.Skipf("no registry credentials (%v): run e2e/up.sh", err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v", configPath, err)
	}
	raw, err := base64.StdEncoding.DecodeString(cfg.Auths[addr].Auth)
	user, pass, ok := strings.Cut(string(raw), ":")
	if err != nil || !ok || pass == "" {
		t.Fatalf("%s: no credentials for %s", configPath, addr)
	}
	target := &url.URL{Scheme: "http", Host: upstream}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// The registry writes upload locations for the Host it is asked by: the request's,
	// so clients come back through here.
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="kubecc-e2e"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
		r.Header.Del("Authorization")
		proxy.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("auth registry: %v", err)
		}
	})
	return &authRegistry{Addr: addr, User: user, Password: pass, DockerConfig: data}
}
