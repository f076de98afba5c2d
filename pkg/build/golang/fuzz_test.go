package golang

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/kubecc/kubecc/pkg/chaincode"
)

// FuzzImportPath: metadata.json's path never leads outside the package, and never
// reaches the go command as a flag.
func FuzzImportPath(f *testing.F) {
	for _, s := range []string{
		"", ".", "example.com/cc", "example.com/cc/cmd", "github.com/a/b-c/d_e.f", "../..", "/etc",
		"-toolexec=/bin/sh", "./x", "a//b", "a/", "a/./b", "a/../b", "C:\\x", "a\x00b", "é/x",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	write(f, dir, map[string]string{"src/go.mod": "module example.com/cc\n\ngo 1.22\n", "src/cmd/main.go": mainGo})
	gopath := f.TempDir()
	src := filepath.Join(dir, "src")
	f.Fuzz(func(t *testing.T, p string) {
		if got := (&Language{}).SourceDir(dir, &chaincode.Metadata{Path: p}); !inside(src, got) {
			t.Fatalf("path %q: SourceDir %s is outside src/", p, got)
		}
		if CheckImportPath(p) == nil && p != "" && p != "." {
			if strings.HasPrefix(p, "-") || strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\n\r\x00\\") || strings.Contains(p, "//") {
				t.Fatalf("accepted path %q", p)
			}
			for _, part := range strings.Split(p, "/") {
				if part == ".." || part == "." {
					t.Fatalf("accepted path %q", p)
				}
			}
		}
		for _, root := range []string{dir, gopath} {
			layout, err := DetectLayout(root, p)
			if err != nil {
				continue
			}
			if strings.HasPrefix(layout.Target, "-") || !inside(root, layout.Dir) {
				t.Fatalf("path %q: layout %+v", p, layout)
			}
			if !layout.Module && !inside(filepath.Join(root, "src"), filepath.Join(root, "src", filepath.FromSlash(layout.Target))) {
				t.Fatalf("path %q: GOPATH target %q leaves src/", p, layout.Target)
			}
		}
	})
}

// FuzzGoMod: an accepted go.mod has no folder replace leading outside the package,
// by a check independent of checkModule (absolute-path prefix comparison), and a
// refused one names go.mod on one line.
func FuzzGoMod(f *testing.F) {
	const head = "module example.com/cc\n\ngo 1.22\n\nrequire example.com/dep v1.0.0\n\n"
	for _, s := range []string{
		head,
		head + "replace example.com/dep => ./dep\n",
		head + "replace example.com/dep => ../META-INF\n",
		head + "replace example.com/dep => ../../x\n",
		head + "replace example.com/dep => /etc\n",
		head + "replace example.com/dep v1.0.0 => example.org/fork v1.2.3\n",
		head + "replace (\n\texample.com/a => ./a\n\texample.com/b => ./a/../../..\n)\n",
		head + "replace example.com/dep => \"./sp ace\"\n",
		head + "toolchain go1.99.0\ngodebug default=go1.21\n",
		"go 1.22\nuse /x\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, gomod string) {
		if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
			t.Fatal(err)
		}
		err := CheckPackage(dir, Layout{Dir: src, Module: true})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "src/go.mod") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line naming src/go.mod: %q", err)
			}
			return
		}
		mf, perr := modfile.Parse("go.mod", []byte(gomod), nil)
		if perr != nil {
			t.Fatalf("accepted a go.mod that does not parse: %v", perr)
		}
		for _, r := range mf.Replace {
			if r.New.Version != "" {
				continue
			}
			if strings.HasPrefix(r.New.Path, "/") {
				t.Fatalf("accepted absolute replace %q", r.New.Path)
			}
			abs, _ := filepath.Abs(filepath.Join(src, filepath.FromSlash(r.New.Path)))
			if abs != dir && !strings.HasPrefix(abs, dir+string(filepath.Separator)) {
				t.Fatalf("accepted replace %q leading to %s", r.New.Path, abs)
			}
		}
	})
}
