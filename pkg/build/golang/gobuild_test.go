package golang

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func write(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const mainGo = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"ok\") }\n"

// The layouts `peer lifecycle chaincode package --lang golang` produces, compiled for
// real (no network: the vendored module is local).
func TestLayoutsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go")
	}
	cases := map[string]struct {
		path    string
		files   map[string]string
		summary string
	}{
		"module at src": {"example.com/cc", map[string]string{"src/go.mod": "module example.com/cc\n\ngo 1.22\n", "src/main.go": mainGo}, "module at src/"},
		"module in a sub-folder of src": {"example.com/cc/cmd", map[string]string{
			"src/go.mod": "module example.com/cc\n\ngo 1.22\n", "src/cmd/main.go": mainGo}, "module at src/"},
		"vendored module": {"example.com/cc", map[string]string{
			"src/go.mod":                        "module example.com/cc\n\ngo 1.22\n\nrequire example.org/dep v1.0.0\n",
			"src/main.go":                       "package main\n\nimport \"example.org/dep\"\n\nfunc main() { dep.Hello() }\n",
			"src/vendor/modules.txt":            "# example.org/dep v1.0.0\n## explicit\nexample.org/dep\n",
			"src/vendor/example.org/dep/dep.go": "package dep\n\nfunc Hello() {}\n",
		}, "module at src/"},
		"GOPATH": {"example.com/gopathcc", map[string]string{"src/example.com/gopathcc/main.go": mainGo}, "GOPATH"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tc.files)
			layout, err := DetectLayout(dir, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if layout.Summary != tc.summary {
				t.Errorf("layout %q, want %q", layout.Summary, tc.summary)
			}
			if name == "vendored module" && !layout.Vendor {
				t.Error("vendor/ not detected")
			}
			out := filepath.Join(t.TempDir(), "cc")
			env := append(os.Environ(), "GOFLAGS=", "GOPROXY=off")
			if err := Build(context.Background(), Options{SrcDir: dir, Path: tc.path, GOARCH: "amd64", Out: out, Env: env, Log: io.Discard}); err != nil {
				t.Fatal(err)
			}
			got, err := exec.Command(out).Output()
			if err != nil || string(got) != "ok\n" && name != "vendored module" {
				t.Fatalf("binary ran: %q %v", got, err)
			}
		})
	}
}

func TestLayoutErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"src/other/main.go": mainGo})
	for _, path := range []string{"", "example.com/missing", "../escape"} {
		if _, err := DetectLayout(dir, path); err == nil {
			t.Errorf("path %q: no error", path)
		} else if !strings.Contains(err.Error(), `field "path"`) {
			t.Errorf("path %q: %v", path, err)
		}
	}
}
