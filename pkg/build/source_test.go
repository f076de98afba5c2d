package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecc/kubecc/pkg/chaincode"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnpackFolderByLanguage(t *testing.T) {
	limits := chaincode.DefaultLimits()
	cases := []struct {
		name  string
		files map[string]string
		typ   string
		want  []string // files expected under SrcDir
		gone  []string // files that must not be copied
	}{
		{
			name:  "go",
			files: map[string]string{"go.mod": "module x\n", "main.go": "package main\n", ".git/HEAD": "ref\n"},
			typ:   "golang",
			want:  []string{"src/go.mod", "src/main.go"},
			gone:  []string{"src/.git/HEAD"},
		},
		{
			name: "node",
			files: map[string]string{
				"package.json": `{"scripts":{"start":"node index.js"}}`, "index.js": "1\n",
				"node_modules/x/index.js": "1\n", "lib/node_modules/y.js": "1\n",
			},
			typ:  "node",
			want: []string{"src/package.json", "src/index.js"},
			gone: []string{"src/node_modules/x/index.js", "src/lib/node_modules/y.js"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "my-cc")
			writeTree(t, dir, c.files)
			u, err := Unpack(dir, "", limits)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = u.Close() }()
			if u.Metadata.Type != c.typ || u.Metadata.Label != "my-cc" {
				t.Fatalf("metadata = %+v, want type %s label my-cc", u.Metadata, c.typ)
			}
			for _, f := range c.want {
				if _, err := os.Stat(filepath.Join(u.SrcDir, f)); err != nil {
					t.Errorf("want %s: %v", f, err)
				}
			}
			for _, f := range c.gone {
				if _, err := os.Stat(filepath.Join(u.SrcDir, f)); err == nil {
					t.Errorf("%s was copied", f)
				}
			}
		})
	}
}

func TestUnpackFolderNeitherGoNorNode(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"main.py": "print(1)\n"})
	_, err := Unpack(dir, "x", chaincode.DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), "no go.mod or package.json") {
		t.Fatalf("err = %v, want a message naming go.mod and package.json", err)
	}
}
