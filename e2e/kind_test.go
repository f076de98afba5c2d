//go:build e2e

package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubecc/kubecc/pkg/config"
)

// The names written in e2e/kind/manifests, e2e/kind/overlay and e2e/kind/common.sh.
const (
	kindNamespace  = "kubecc-kind"
	kindPeer       = "peer0-org1"
	kindKubeccRepo = "kind-registry:5000/kubecc/kubecc"
	kindToolsRepo  = "localhost:5001/kubecc-kind-tools"
	kindPeerImage  = "hyperledger/fabric-peer:3.1.1"
)

// kindPlaceholder matches what a script would have to substitute (${VAR}, $VAR, __VAR__,
// <VAR>): the overlay must work as it is, so none may be left. The kit's $(POD_IP) is
// the kubelet's own expansion and does not match.
var kindPlaceholder = regexp.MustCompile(`\$\{?[A-Z_][A-Z0-9_]*\}?|__[A-Z0-9_]+__|<[A-Z][A-Z0-9_]*>`)

// splitYAML returns the non-empty documents of a multi-document YAML stream.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		body := regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")
		if strings.TrimSpace(body) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// kindObject is one rendered object: its kind and name, and the whole of it.
type kindObject struct {
	Kind, Name string
	Raw        []byte
	Map        map[string]any
}

func (o kindObject) key() string { return o.Kind + "/" + o.Name }

func parseObjects(t *testing.T, what string, data []byte) []kindObject {
	t.Helper()
	var out []kindObject
	for _, doc := range splitYAML(data) {
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		md, _ := m["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		kind, _ := m["kind"].(string)
		out = append(out, kindObject{Kind: kind, Name: name, Raw: doc, Map: m})
	}
	if len(out) == 0 {
		t.Fatalf("%s: no objects", what)
	}
	return out
}

func findObject(objs []kindObject, kind, name string) *kindObject {
	for i := range objs {
		if objs[i].Kind == kind && objs[i].Name == name {
			return &objs[i]
		}
	}
	return nil
}

func deployments(t *testing.T, objs []kindObject) map[string]*appsv1.Deployment {
	t.Helper()
	out := map[string]*appsv1.Deployment{}
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := yaml.Unmarshal(o.Raw, &d); err != nil {
			t.Fatalf("Deployment %s: %v", o.Name, err)
		}
		out[o.Name] = &d
	}
	return out
}

// kitComponent is the pod template the deploy/peer component patches into a peer.
func kitComponent(t *testing.T, repo string) corev1.PodSpec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "deploy/peer/peer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatalf("deploy/peer/peer.yaml: %v", err)
	}
	spec := d.Spec.Template.Spec
	if len(spec.InitContainers) == 0 || len(spec.Containers) != 1 || len(spec.Containers[0].Env) == 0 || len(spec.Volumes) == 0 {
		t.Fatalf("deploy/peer/peer.yaml: no init container, peer env or volumes read")
	}
	return spec
}

func container(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// kindConfig loads the builder config.yaml of the rendered ConfigMap kubecc-config.
func kindConfig(t *testing.T, objs []kindObject) *config.Config {
	t.Helper()
	o := findObject(objs, "ConfigMap", "kubecc-config")
	if o == nil {
		t.Fatal("no ConfigMap kubecc-config")
	}
	data, _ := o.Map["data"].(map[string]any)
	cfgYAML, _ := data["config.yaml"].(string)
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(cfgYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("", func(k string) (string, bool) {
		if k == "KUBECC_CONFIG" {
			return p, true
		}
		return "", false
	})
	if err != nil {
		t.Fatalf("kubecc rejects the builder config: %v", err)
	}
	return cfg
}

// withoutNamespace drops what kustomize's namespace transformer sets, to compare an
// object of the overlay with the kit's own.
func withoutNamespace(m map[string]any) map[string]any {
	data, _ := yaml.Marshal(m)
	var c map[string]any
	_ = yaml.Unmarshal(data, &c)
	if md, ok := c["metadata"].(map[string]any); ok {
		delete(md, "namespace")
	}
	if subjects, ok := c["subjects"].([]any); ok {
		for _, s := range subjects {
			if s, ok := s.(map[string]any); ok {
				delete(s, "namespace")
			}
		}
	}
	return c
}

// The kind flow cannot run here (no Docker). What it applies can: the overlay (and the
// digest-pinned kustomization up.sh wraps it in, made by the script's own function) is
// rendered with kubectl's kustomize and every object is validated by the real API
// server with a server-side dry run. The rest checks that kind installs kubecc only
// through the kit: the kit's objects unchanged, the component's pieces in the peer, and
// none of them in the network's own manifests.
func TestKindManifestsValidateOnServer(t *testing.T) {
	h := newHarness(t)
	kubectl := h.vars["KUBECTL"]
	if kubectl == "" {
		kubectl = h.lookPath("kubectl")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kctl := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, kubectl, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+h.vars["KUBECONFIG"])
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	render := func(dir string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
		}
		return out
	}

	overlayYAML := render(filepath.Join(h.repo, "e2e/kind/overlay"))
	overlay := parseObjects(t, "e2e/kind/overlay", overlayYAML)
	bare := parseObjects(t, "e2e/kind/manifests", render(filepath.Join(h.repo, "e2e/kind/manifests")))
	base := parseObjects(t, "deploy/base", render(filepath.Join(h.repo, "deploy/base")))
	comp := kitComponent(t, h.repo)

	// up.sh's own pin_kustomization, with made-up digests.
	kubeccPinned := kindKubeccRepo + "@sha256:" + strings.Repeat("1", 64)
	toolsPinned := kindToolsRepo + "@sha256:" + strings.Repeat("2", 64)
	pinDir := filepath.Join(t.TempDir(), "kustomize")
	pin := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", `. "$1/e2e/kind/common.sh"; pin_kustomization "$2" "$3" "$4"`,
		"bash", h.repo, pinDir, kubeccPinned, toolsPinned)
	if out, err := pin.CombinedOutput(); err != nil {
		t.Fatalf("pin_kustomization (e2e/kind/common.sh): %v\n%s", err, out)
	}
	pinnedYAML := render(pinDir)
	pinned := parseObjects(t, "up.sh's pinned kustomization", pinnedYAML)

	// Server-side dry run needs the namespace to exist: create it for real, and remove it
	// afterwards unless it was there before.
	out, err := kctl(ctx, "create", "namespace", kindNamespace, "--save-config")
	switch {
	case err == nil:
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if out, err := kctl(ctx, "delete", "namespace", kindNamespace, "--ignore-not-found", "--wait=true", "--timeout=90s"); err != nil {
				t.Errorf("delete namespace %s: %v\n%s", kindNamespace, err, out)
			}
		})
	case strings.Contains(out, "AlreadyExists"):
		t.Logf("namespace %s already exists: kept", kindNamespace)
	default:
		t.Fatalf("create namespace %s: %v\n%s", kindNamespace, err, out)
	}

	registryHosting, err := os.ReadFile(filepath.Join(h.repo, "e2e/kind/local-registry-hosting.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		yaml []byte
	}{
		{"overlay", overlayYAML},
		{"overlay pinned as up.sh applies it", pinnedYAML},
		{"local-registry-hosting.yaml", registryHosting},
	} {
		t.Run("dry run: "+c.name, func(t *testing.T) {
			for _, line := range strings.Split(string(c.yaml), "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "#") {
					continue
				}
				if m := kindPlaceholder.FindString(line); m != "" {
					t.Errorf("unsubstituted placeholder %q: %s", m, strings.TrimSpace(line))
				}
			}
			f := filepath.Join(t.TempDir(), "objects.yaml")
			if err := os.WriteFile(f, c.yaml, 0o644); err != nil {
				t.Fatal(err)
			}
			n := len(splitYAML(c.yaml))
			out, err := kctl(ctx, "apply", "--dry-run=server", "-f", f)
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
			}
			if got := strings.Count(out, "(server dry run)"); got != n {
				t.Errorf("%d objects, %d accepted by the server:\n%s", n, got, out)
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}

	t.Run("the overlay adds the kit's base and nothing else", func(t *testing.T) {
		want := map[string]bool{}
		for _, o := range append(append([]kindObject{}, bare...), base...) {
			want[o.key()] = true
		}
		got := map[string]bool{}
		for _, o := range overlay {
			got[o.key()] = true
			if !want[o.key()] {
				t.Errorf("%s is in the overlay but neither in manifests/ nor in deploy/base", o.key())
			}
			md, _ := o.Map["metadata"].(map[string]any)
			if ns, _ := md["namespace"].(string); o.Kind != "Namespace" && ns != kindNamespace {
				t.Errorf("%s: namespace %q, want %s", o.key(), ns, kindNamespace)
			}
		}
		for k := range want {
			if !got[k] {
				t.Errorf("%s is missing from the overlay", k)
			}
		}
		// The kit's RBAC, as the kit has it (the config is the overlay's own, by design).
		for _, b := range base {
			if b.Kind == "ConfigMap" {
				continue
			}
			o := findObject(overlay, b.Kind, b.Name)
			if o == nil {
				continue // reported above
			}
			if !reflect.DeepEqual(withoutNamespace(o.Map), withoutNamespace(b.Map)) {
				t.Errorf("%s differs from deploy/base's:\noverlay: %s\nkit: %s", b.key(), o.Raw, b.Raw)
			}
		}
		if findObject(overlay, "Role", "kubecc-chaincode-launcher") == nil || findObject(overlay, "RoleBinding", "kubecc-chaincode-launcher") == nil {
			t.Error("the kit's Role and RoleBinding are not in the overlay")
		}
	})

	t.Run("manifests/ install nothing of kubecc themselves", func(t *testing.T) {
		compEnv := map[string]bool{}
		for _, e := range comp.Containers[0].Env {
			compEnv[e.Name] = true
		}
		compVolumes := map[string]bool{}
		for _, v := range comp.Volumes {
			compVolumes[v.Name] = true
		}
		for _, o := range bare {
			switch o.Kind {
			case "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ConfigMap":
				t.Errorf("%s: RBAC and kubecc's config come from the kit (deploy/base)", o.key())
			case "ServiceAccount":
				if o.Name == comp.ServiceAccountName {
					t.Errorf("%s: the peer's service account comes from the kit", o.key())
				}
			}
			if strings.Contains(string(o.Raw), "/opt/kubecc") || strings.Contains(string(o.Raw), "externalBuilders") {
				t.Errorf("%s: names the builder (the kit's component sets it)", o.key())
			}
		}
		for name, d := range deployments(t, bare) {
			spec := d.Spec.Template.Spec
			if len(spec.InitContainers) > 0 || spec.ServiceAccountName == comp.ServiceAccountName {
				t.Errorf("Deployment %s: init containers, or the kit's service account", name)
			}
			for _, v := range spec.Volumes {
				if compVolumes[v.Name] {
					t.Errorf("Deployment %s: volume %s is the kit's", name, v.Name)
				}
			}
			for _, c := range spec.Containers {
				for _, e := range c.Env {
					if compEnv[e.Name] {
						t.Errorf("Deployment %s: env %s is the kit's", name, e.Name)
					}
				}
			}
		}
	})

	for _, c := range []struct {
		name    string
		objs    []kindObject
		kubecc  string
		toolsRe string
	}{
		{"overlay", overlay, kindKubeccRepo + ":dev", "^" + regexp.QuoteMeta(kindToolsRepo) + ":"},
		{"pinned", pinned, kubeccPinned, "^" + regexp.QuoteMeta(toolsPinned) + "$"},
	} {
		t.Run("the peer gets the kit's component: "+c.name, func(t *testing.T) {
			deps := deployments(t, c.objs)
			d := deps[kindPeer]
			if d == nil {
				t.Fatalf("no Deployment %s", kindPeer)
			}
			spec := d.Spec.Template.Spec
			if spec.ServiceAccountName != comp.ServiceAccountName {
				t.Errorf("serviceAccountName %q, want the kit's %q", spec.ServiceAccountName, comp.ServiceAccountName)
			}
			for _, want := range comp.InitContainers {
				got := container(spec.InitContainers, want.Name)
				if got == nil {
					t.Errorf("no init container %s", want.Name)
					continue
				}
				if got.Image != c.kubecc {
					t.Errorf("init container %s: image %q, want %q", want.Name, got.Image, c.kubecc)
				}
				want.Image = got.Image
				if !reflect.DeepEqual(*got, want) {
					t.Errorf("init container %s differs from the kit's:\ngot  %+v\nwant %+v", want.Name, *got, want)
				}
			}
			peer := container(spec.Containers, comp.Containers[0].Name)
			if peer == nil {
				t.Fatalf("no container %s", comp.Containers[0].Name)
			}
			if peer.Image != kindPeerImage {
				t.Errorf("peer image %q, want the stock %s", peer.Image, kindPeerImage)
			}
			defined := map[string]int{}
			for i, e := range peer.Env {
				if _, dup := defined[e.Name]; dup {
					t.Errorf("env %s defined twice", e.Name)
				}
				defined[e.Name] = i
			}
			for _, want := range comp.Containers[0].Env {
				i, ok := defined[want.Name]
				if !ok || !reflect.DeepEqual(peer.Env[i], want) {
					t.Errorf("env %s: not the kit's %+v", want.Name, want)
				}
			}
			// The kubelet expands $(VAR) only from variables defined before.
			for i, e := range peer.Env {
				for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(e.Value, -1) {
					if j, ok := defined[m[1]]; !ok || j > i {
						t.Errorf("env %s uses $(%s), not defined before it", e.Name, m[1])
					}
				}
			}
			for _, want := range comp.Containers[0].VolumeMounts {
				var found bool
				for _, got := range peer.VolumeMounts {
					if got.Name == want.Name {
						found = true
						if !reflect.DeepEqual(got, want) {
							t.Errorf("volume mount %s: %+v, want the kit's %+v", want.Name, got, want)
						}
					}
				}
				if !found {
					t.Errorf("no volume mount %s", want.Name)
				}
			}
			for _, want := range comp.Volumes {
				var found bool
				for _, got := range spec.Volumes {
					if got.Name == want.Name {
						found = true
						if !reflect.DeepEqual(got, want) {
							t.Errorf("volume %s: %+v, want the kit's %+v", want.Name, got, want)
						}
					}
				}
				if !found {
					t.Errorf("no volume %s", want.Name)
				}
			}
			// Only the peer: the orderer and the cli are not labelled as one.
			for name, d := range deps {
				if name == kindPeer {
					continue
				}
				if container(d.Spec.Template.Spec.InitContainers, comp.InitContainers[0].Name) != nil || d.Spec.Template.Spec.ServiceAccountName == comp.ServiceAccountName {
					t.Errorf("Deployment %s got the kit's component", name)
				}
			}
			cli := deps["cli"]
			if cli == nil || len(cli.Spec.Template.Spec.Containers) != 1 || !regexp.MustCompile(c.toolsRe).MatchString(cli.Spec.Template.Spec.Containers[0].Image) {
				t.Errorf("cli Deployment: image does not match %s", c.toolsRe)
			}
		})

		t.Run("builder config: "+c.name, func(t *testing.T) {
			cfg := kindConfig(t, c.objs)
			if !strings.HasPrefix(cfg.Registry, "kind-registry:5000/") || !cfg.RegistryInsecure {
				t.Errorf("registry %q insecure %v, want kind-registry:5000/..., plain HTTP", cfg.Registry, cfg.RegistryInsecure)
			}
			// The stock peer has no Go: source packages must build in Jobs, which get
			// kubecc from the very image the init container runs.
			if cfg.BuildIn != config.BuildCluster {
				t.Errorf("buildIn %q, want %s", cfg.BuildIn, config.BuildCluster)
			}
			if cfg.KubeccImage != c.kubecc {
				t.Errorf("kubeccImage %q, want %q", cfg.KubeccImage, c.kubecc)
			}
		})
	}
}

func TestShellScriptsPassShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed (e2e/cluster/install.sh installs it): skipping")
	}
	repo, _ := filepath.Abs("..")
	var scripts []string
	err = filepath.WalkDir(filepath.Join(repo, "e2e"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".sh") {
			scripts = append(scripts, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(repo, ".ci/run")); err == nil {
		scripts = append(scripts, filepath.Join(repo, ".ci/run"))
	}
	if len(scripts) == 0 {
		t.Fatal("no shell scripts found")
	}
	sort.Strings(scripts)
	for _, s := range scripts {
		rel, _ := filepath.Rel(repo, s)
		t.Run(rel, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			args := []string{"-x"}
			if isLibrary(t, s) {
				// A sourced library (no #! line) sets variables for the scripts that
				// source it; shellcheck -x checks their use there, not here.
				args = append(args, "--exclude=SC2034")
			}
			cmd := exec.CommandContext(ctx, sc, append(args, filepath.Base(s))...)
			cmd.Dir = filepath.Dir(s) // so that source paths relative to the script resolve
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("shellcheck -x %s: %v\n%s", rel, err, out)
			}
		})
	}
}

// isLibrary tells a file meant to be sourced (no #! line) from a script.
func isLibrary(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return !strings.HasPrefix(string(data), "#!")
}
