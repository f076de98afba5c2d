//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubecc/kubecc/pkg/config"
)

// kindNamespace is the namespace written in e2e/kind/manifests (and e2e/kind/common.sh).
const kindNamespace = "kubecc-kind"

// kindPlaceholder matches what a script would have to substitute (${VAR}, $VAR, __VAR__,
// <VAR>): e2e/kind/up.sh applies the manifests verbatim, so none may be left.
var kindPlaceholder = regexp.MustCompile(`\$\{?[A-Z_][A-Z0-9_]*\}?|__[A-Z0-9_]+__|<[A-Z][A-Z0-9_]*>`)

func kindManifests(t *testing.T, repo string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, "e2e/kind/manifests/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in e2e/kind/manifests: %v", err)
	}
	sort.Strings(files)
	return files
}

// splitYAML returns the non-empty documents of a multi-document YAML file.
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

type kindObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Rules []struct {
		APIGroups []string `json:"apiGroups"`
		Resources []string `json:"resources"`
		Verbs     []string `json:"verbs"`
	} `json:"rules"`
	Data map[string]string `json:"data"`
}

func readObjects(t *testing.T, path string) []kindObject {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []kindObject
	for _, doc := range splitYAML(data) {
		var o kindObject
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, o)
	}
	return out
}

// ruleSet flattens RBAC rules to "group|resource|verb" triples.
func ruleSet(objs []kindObject) map[string]bool {
	set := map[string]bool{}
	for _, o := range objs {
		if o.Kind != "Role" {
			continue
		}
		for _, r := range o.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						set[g+"|"+res+"|"+v] = true
					}
				}
			}
		}
	}
	return set
}

func TestKindManifestsValidateOnServer(t *testing.T) {
	h := newHarness(t)
	kubectl := h.vars["KUBECTL"]
	if kubectl == "" {
		kubectl = h.lookPath("kubectl")
	}
	kctl := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, kubectl, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+h.vars["KUBECONFIG"])
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	files := kindManifests(t, h.repo)

	// Server-side dry run needs the namespace to exist: create it for real, and remove it
	// afterwards unless it was there before.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
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

	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range splitYAML(data) {
				for _, line := range strings.Split(string(doc), "\n") {
					if strings.HasPrefix(strings.TrimSpace(line), "#") {
						continue
					}
					if m := kindPlaceholder.FindString(line); m != "" {
						t.Errorf("unsubstituted placeholder %q (up.sh applies the manifests verbatim): %s", m, strings.TrimSpace(line))
					}
				}
			}
			n := len(splitYAML(data))
			out, err := kctl(ctx, "apply", "--dry-run=server", "-f", f)
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server -f %s: %v\n%s", f, err, out)
			}
			if got := strings.Count(out, "(server dry run)"); got != n {
				t.Errorf("%d objects in the file, %d accepted by the server:\n%s", n, got, out)
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}

	t.Run("Role is a superset of deploy/base/rbac.yaml", func(t *testing.T) {
		want := ruleSet(readObjects(t, filepath.Join(h.repo, "deploy/base/rbac.yaml")))
		if len(want) == 0 {
			t.Fatal("no rules read from deploy/base/rbac.yaml")
		}
		var kind []kindObject
		for _, f := range files {
			kind = append(kind, readObjects(t, f)...)
		}
		got := ruleSet(kind)
		var missing []string
		for r := range want {
			if !got[r] {
				missing = append(missing, r)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("the kind Role lacks (group|resource|verb): %v", missing)
		}
		// The peer's own Pod is read for owner references.
		if !got["|pods|get"] {
			t.Error("the kind Role does not allow pods get (owner references)")
		}
		// The Role must be bound to the service account the peer Deployment runs as.
		var bound bool
		for _, o := range kind {
			if o.Kind == "RoleBinding" && o.Metadata.Namespace == kindNamespace {
				bound = true
			}
		}
		if !bound {
			t.Error("no RoleBinding in namespace " + kindNamespace)
		}
	})

	t.Run("kubecc builder config loads", func(t *testing.T) {
		var cfgYAML string
		for _, f := range files {
			for _, o := range readObjects(t, f) {
				if o.Kind == "ConfigMap" && o.Metadata.Name == "kubecc-builder" {
					cfgYAML = o.Data["config.yaml"]
				}
			}
		}
		if cfgYAML == "" {
			t.Fatal("no ConfigMap kubecc-builder with config.yaml")
		}
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
		if cfg.Namespace != kindNamespace || !strings.HasPrefix(cfg.Registry, "kind-registry:5000/") || !cfg.RegistryInsecure {
			t.Errorf("builder config: namespace %q registry %q insecure %v", cfg.Namespace, cfg.Registry, cfg.RegistryInsecure)
		}
	})

	t.Run("peer core.yaml makes kubecc the external builder", func(t *testing.T) {
		var core string
		for _, f := range files {
			for _, o := range readObjects(t, f) {
				if o.Kind == "ConfigMap" && o.Metadata.Name == "peer0-org1-core" {
					core = o.Data["core.yaml"]
				}
			}
		}
		var doc struct {
			VM        struct{ Endpoint *string } `json:"vm"`
			Chaincode struct {
				ExternalBuilders []struct {
					Name                 string   `json:"name"`
					Path                 string   `json:"path"`
					PropagateEnvironment []string `json:"propagateEnvironment"`
				} `json:"externalBuilders"`
			} `json:"chaincode"`
		}
		if err := yaml.Unmarshal([]byte(core), &doc); err != nil || core == "" {
			t.Fatalf("ConfigMap peer0-org1-core core.yaml: %v", err)
		}
		if doc.VM.Endpoint == nil || *doc.VM.Endpoint != "" {
			t.Error(`core.yaml: vm.endpoint must be "" (no Docker)`)
		}
		if len(doc.Chaincode.ExternalBuilders) != 1 || doc.Chaincode.ExternalBuilders[0].Path != "/opt/kubecc" {
			t.Fatalf("core.yaml externalBuilders %+v, want kubecc at /opt/kubecc", doc.Chaincode.ExternalBuilders)
		}
		env := map[string]bool{}
		for _, v := range doc.Chaincode.ExternalBuilders[0].PropagateEnvironment {
			env[v] = true
		}
		for _, v := range []string{"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECC_CONFIG", "KUBECC_PEER_POD", "HOME"} {
			if !env[v] {
				t.Errorf("core.yaml: propagateEnvironment lacks %s", v)
			}
		}
	})
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
