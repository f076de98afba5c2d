package config

import (
	"github.com/kubecc/kubecc/pkg/chaincode"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadFileThenEnv(t *testing.T) {
	dir := writeConfig(t, `
registry: reg.example/kubecc
namespace: chaincode
goarch: arm64
resources:
  limits: {cpu: 500m, memory: 128Mi}
nodeSelector: {disk: ssd}
tolerations: [{key: dedicated, operator: Equal, value: cc, effect: NoSchedule}]
imagePullSecrets: [regcred]
idleTimeout: 30s
`)
	c, err := Load(dir, env(map[string]string{"KUBECC_NAMESPACE": "override", "KUBECC_REGISTRY_INSECURE": "true", "KUBECC_PEER_ADDRESS": "10.0.0.1:7052"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Registry != "reg.example/kubecc" || c.Namespace != "override" || c.GOARCH != "arm64" || c.PeerAddress != "10.0.0.1:7052" {
		t.Fatalf("%+v", c)
	}
	if !c.Insecure("reg.example") || c.Insecure("other.example") {
		t.Fatal("insecure host set wrong")
	}
	if c.Resources.Limits.Cpu().String() != "500m" || c.NodeSelector["disk"] != "ssd" || len(c.Tolerations) != 1 || c.ImagePullSecrets[0] != "regcred" {
		t.Fatalf("pod settings %+v", c)
	}
	if c.IdleTimeout.Duration != 30*time.Second || c.Launch != chaincode.LaunchPod || c.RunAsUser != 10001 {
		t.Fatalf("defaults %+v", c)
	}
}

func TestNoFileGivesDefaults(t *testing.T) {
	c, err := Load(t.TempDir(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace != "default" || c.GOARCH != "amd64" {
		t.Fatalf("%+v", c)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		file string
		env  map[string]string
		want []string
	}{
		{"registy: x\n", nil, []string{FileName, `"registy"`}}, //nolint:misspell // the typo is the test
		{"namespace: Not_Valid\n", nil, []string{"namespace"}},
		{"goarch: vax\n", nil, []string{"goarch"}},
		{"idleTimeout: soon\n", nil, []string{FileName, "duration"}},
		{"launch: lambda\n", nil, []string{"launch"}},
		{"registry: http://x/y\n", nil, []string{"registry"}},
		{"", map[string]string{"KUBECC_REGISTRY_INSECURE": "yes please"}, []string{"KUBECC_REGISTRY_INSECURE"}},
		{"", map[string]string{"KUBECC_PEER_ADDRESS": "nohost"}, []string{"peerAddress"}},
		{"", map[string]string{"KUBECC_NODE_SELECTOR": "novalue"}, []string{"KUBECC_NODE_SELECTOR"}},
		{"", map[string]string{"KUBECC_IDLE_TIMEOUT": "ten"}, []string{"KUBECC_IDLE_TIMEOUT"}},
		{"", map[string]string{"KUBECC_RESOURCES": "{limits: 3}"}, []string{"KUBECC_RESOURCES"}},
	}
	for _, tc := range cases {
		_, err := Load(writeConfig(t, tc.file), env(tc.env))
		if err == nil {
			t.Errorf("%q %v: no error", tc.file, tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q %v: error %q does not name %s", tc.file, tc.env, err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error spans lines: %q", err)
		}
	}
}

func TestAllowedRegistries(t *testing.T) {
	c, err := Load(writeConfig(t, "allowedRegistries: [127.0.0.1:5000, ghcr.io, \"[::1]:5000\"]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.AllowedRegistries, ",") != "127.0.0.1:5000,ghcr.io,[::1]:5000" {
		t.Fatalf("from the file: %q", c.AllowedRegistries)
	}
	c, err = Load(writeConfig(t, "allowedRegistries: [ghcr.io]\n"), env(map[string]string{"KUBECC_ALLOWED_REGISTRIES": " reg.example:443 , docker.io,"}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.AllowedRegistries, ",") != "reg.example:443,docker.io" {
		t.Fatalf("from the env: %q", c.AllowedRegistries)
	}
	for _, bad := range []string{"https://ghcr.io", "ghcr.io/org", "ghcr.io:port", "a b", "-x.io"} {
		_, err := Load(t.TempDir(), env(map[string]string{"KUBECC_ALLOWED_REGISTRIES": bad}))
		if err == nil || !strings.Contains(err.Error(), "allowedRegistries") || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func TestBuildEnvValuesMayHoldCommas(t *testing.T) {
	c, err := Load(t.TempDir(), func(k string) (string, bool) {
		if k == "KUBECC_BUILD_ENV" {
			return "GOPROXY=https://proxy.example,direct,NO_PROXY=a.example,b.example", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.BuildEnv["GOPROXY"] != "https://proxy.example,direct" || c.BuildEnv["NO_PROXY"] != "a.example,b.example" || len(c.BuildEnv) != 2 {
		t.Fatalf("buildEnv %v", c.BuildEnv)
	}
	if _, err := Load(t.TempDir(), func(k string) (string, bool) {
		if k == "KUBECC_BUILD_ENV" {
			return "PATH=/evil", true
		}
		return "", false
	}); err == nil || !strings.Contains(err.Error(), "buildEnv") {
		t.Fatalf("PATH in buildEnv: %v", err)
	}
}
