package golang

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kubecc/kubecc/pkg/chaincode"
)

// testEnv is a hook environment for real compiles: nothing can be fetched, and the
// machine's GOFLAGS do not count.
func testEnv(extra ...string) []string {
	return append(append(os.Environ(), "GOFLAGS=", "GOPROXY=off"), extra...)
}

func build(t *testing.T, dir, path string, env []string) (string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cc")
	err := Build(context.Background(), Options{SrcDir: dir, Path: path, GOARCH: "amd64", Out: out, Env: env, Log: io.Discard})
	return out, err
}

func mustRun(t *testing.T, bin, want string) {
	t.Helper()
	got, err := exec.Command(bin).Output()
	if err != nil || string(got) != want {
		t.Fatalf("binary printed %q (%v), want %q", got, err, want)
	}
}

func checkModuleLayout(t *testing.T, files map[string]string) error {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, files)
	layout, err := DetectLayout(dir, "example.com/cc")
	if err != nil {
		t.Fatal(err)
	}
	return CheckPackage(dir, layout)
}

func TestReplaceOutsideThePackageIsRefused(t *testing.T) {
	const gomod = "module example.com/cc\n\ngo 1.22\n\nrequire example.com/leak v0.0.0\n\n"
	cases := map[string]struct {
		files map[string]string
		want  string // "" means accepted
	}{
		"absolute": {map[string]string{"src/go.mod": gomod + "replace example.com/leak => /etc/x\n"},
			"src/go.mod: replace example.com/leak => /etc/x: target is outside the package"},
		"absolute with a version on the left": {map[string]string{"src/go.mod": gomod + "replace example.com/leak v0.0.0 => /etc/x\n"},
			"src/go.mod: replace example.com/leak v0.0.0 => /etc/x: target is outside the package"},
		"in a replace block": {map[string]string{"src/go.mod": gomod + "replace (\n\texample.com/ok => ./ok\n\texample.com/leak => /etc/x\n)\n"},
			"src/go.mod: replace example.com/leak => /etc/x: target is outside the package"},
		"../ leaving the package": {map[string]string{"src/go.mod": gomod + "replace example.com/leak => ../../leak\n"},
			"src/go.mod: replace example.com/leak => ../../leak: target is outside the package"},
		"./ then ../ leaving the package": {map[string]string{"src/go.mod": gomod + "replace example.com/leak => ./sub/../../../leak\n"},
			"target is outside the package"},
		"a sub-module's own replace leading out": {map[string]string{
			"src/go.mod":      gomod + "replace example.com/leak => ./leak\n",
			"src/leak/go.mod": "module example.com/leak\n\ngo 1.22\n\nreplace example.com/deeper => ../../../deeper\n"},
			"src/leak/go.mod: replace example.com/deeper => ../../../deeper: target is outside the package"},
		"in-package ./sub":           {map[string]string{"src/go.mod": gomod + "replace example.com/leak => ./leak\n", "src/leak/go.mod": "module example.com/leak\n"}, ""},
		"../ staying in the package": {map[string]string{"src/go.mod": gomod + "replace example.com/leak => ../META-INF/leak\n"}, ""},
		"a replace cycle":            {map[string]string{"src/go.mod": gomod + "replace example.com/leak => ./a\n", "src/a/go.mod": "module example.com/leak\n\nreplace example.com/cc => ../\n"}, ""},
		"another module version":     {map[string]string{"src/go.mod": gomod + "replace example.com/leak => example.org/fork v1.2.3\n"}, ""},
		"replacement without go.mod": {map[string]string{"src/go.mod": gomod + "replace example.com/leak => ./missing\n"}, ""},
		"unknown directive":          {map[string]string{"src/go.mod": gomod + "frobnicate /etc\n"}, "src/go.mod:7: unknown directive: frobnicate"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := checkModuleLayout(t, tc.files)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// The attack from the issue: a go.mod replacing a module by a folder on the peer
// host that holds a go.mod, and a //go:embed in that module that would put the
// folder's files into the image. The build fails before the go command runs, and
// the error names go.mod.
func TestEmbedFromAFolderOnThePeerHostIsRefused(t *testing.T) {
	host := t.TempDir() // somewhere on the peer host, outside the package
	write(t, host, map[string]string{
		"go.mod":     "module example.com/leak\n\ngo 1.22\n",
		"secret.txt": "PEER-HOST-SECRET-MARKER\n",
		"leak.go":    "package leak\n\nimport _ \"embed\"\n\n//go:embed secret.txt\nvar Secret string\n",
	})
	// The relative case: a package laid out at <tmp>/fabric-cc/src, its replace
	// climbing out to host.
	pkg := filepath.Join(t.TempDir(), "fabric-cc", "src")
	rel, err := filepath.Rel(filepath.Join(pkg, "src"), host)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ dir, target string }{
		"absolute": {t.TempDir(), host},
		"relative": {pkg, filepath.ToSlash(rel)},
	} {
		t.Run(name, func(t *testing.T) {
			dir := tc.dir
			write(t, dir, map[string]string{
				"src/go.mod":  "module example.com/cc\n\ngo 1.22\n\nrequire example.com/leak v0.0.0\n\nreplace example.com/leak => " + tc.target + "\n",
				"src/main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/leak\"\n)\n\nfunc main() { fmt.Print(leak.Secret) }\n",
			})
			out, err := build(t, dir, "example.com/cc", testEnv())
			if err == nil || !strings.Contains(err.Error(), "src/go.mod: replace example.com/leak => ") || !strings.Contains(err.Error(), "outside the package") {
				t.Fatalf("build error %v, want one naming go.mod and the replace", err)
			}
			if _, statErr := os.Stat(out); statErr == nil {
				t.Fatal("a binary was written")
			}
		})
	}
}

// A replace by a folder inside the package is fine, and builds.
func TestInPackageReplaceBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go")
	}
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"src/go.mod":         "module example.com/cc\n\ngo 1.22\n\nrequire example.com/sub v0.0.0\n\nreplace example.com/sub => ./sub\n",
		"src/main.go":        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/sub\"\n)\n\nfunc main() { fmt.Println(sub.Word) }\n",
		"src/sub/go.mod":     "module example.com/sub\n\ngo 1.22\n",
		"src/sub/sub.go":     "package sub\n\nimport _ \"embed\"\n\n//go:embed word.txt\nvar Word string\n",
		"src/sub/word.txt":   "inside",
		"META-INF/note.json": "{}",
	})
	out, err := build(t, dir, "example.com/cc", testEnv())
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, out, "inside\n")
}

// GOWORK=off: a go.work in the package changes nothing, whatever it uses.
func TestGoWorkInThePackageIsIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go")
	}
	t.Run("use of a folder that is not there", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, map[string]string{
			"src/go.mod":  "module example.com/cc\n\ngo 1.22\n",
			"src/go.work": "go 1.22\n\nuse (\n\t.\n\t/somewhere/that/does/not/exist\n)\n",
			"src/main.go": mainGo,
		})
		out, err := build(t, dir, "example.com/cc", testEnv())
		if err != nil {
			t.Fatal(err)
		}
		mustRun(t, out, "ok\n")
	})
	t.Run("use of a module on the peer host", func(t *testing.T) {
		host := t.TempDir()
		write(t, host, map[string]string{
			"go.mod":  "module example.com/leak\n\ngo 1.22\n",
			"leak.go": "package leak\n\nconst Secret = \"PEER-HOST\"\n",
		})
		dir := t.TempDir()
		write(t, dir, map[string]string{
			"src/go.mod":  "module example.com/cc\n\ngo 1.22\n",
			"src/go.work": "go 1.22\n\nuse (\n\t.\n\t" + host + "\n)\n",
			"src/main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/leak\"\n)\n\nfunc main() { fmt.Println(leak.Secret) }\n",
		})
		// Control: with workspaces on, this go.work would reach the host folder.
		ctl := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "ctl"), ".")
		ctl.Dir = filepath.Join(dir, "src")
		ctl.Env = testEnv("GOWORK=", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
		if b, err := ctl.CombinedOutput(); err != nil {
			t.Fatalf("control build with the workspace failed, the test proves nothing: %v\n%s", err, b)
		}
		_, err := build(t, dir, "example.com/cc", testEnv())
		if err == nil || !strings.Contains(err.Error(), "example.com/leak") {
			t.Fatalf("build error %v, want the host module not to be found", err)
		}
	})
}

// GOTOOLCHAIN=local, whatever the hook's environment says: a go.mod asking for a Go
// that is not there fails at once with the go command's one-line reason, and no
// toolchain is downloaded (GOPROXY=off would make any attempt fail differently).
func TestNewerGoFailsClearlyWithoutDownloading(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Go")
	}
	dir := t.TempDir()
	write(t, dir, map[string]string{"src/go.mod": "module example.com/cc\n\ngo 1.99\n", "src/main.go": mainGo})
	start := time.Now()
	_, err := build(t, dir, "example.com/cc", testEnv("GOTOOLCHAIN=auto"))
	if err == nil || !strings.Contains(err.Error(), "go.mod requires go >= 1.99") || !strings.Contains(err.Error(), "GOTOOLCHAIN=local") {
		t.Fatalf("error %v, want the go command's go.mod requires go >= 1.99 (GOTOOLCHAIN=local)", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s", d)
	}

	// A toolchain line alone is only a preference: nothing is fetched, it builds.
	dir = t.TempDir()
	write(t, dir, map[string]string{"src/go.mod": "module example.com/cc\n\ngo 1.22\n\ntoolchain go1.99.1\n", "src/main.go": mainGo})
	out, err := build(t, dir, "example.com/cc", testEnv("GOTOOLCHAIN=auto"))
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, out, "ok\n")
}

func TestEnvIsTheOperatorsGoSettingsOnly(t *testing.T) {
	base := []string{
		"PATH=/usr/bin", "HOME=/home/peer", "GOPROXY=http://proxy", "GOFLAGS=-mod=mod", "GOFLAGS=", "https_proxy=http://p:3128",
		"CORE_PEER_TLS_KEY_FILE=/etc/hyperledger/key.pem", "FOO_SECRET=hunter2", "KUBECONFIG=/root/.kube/config",
		"GOEXPERIMENT=boringcrypto", "GODEBUG=x=1", "CGO_ENABLED=1", "CC=/tmp/evil-cc", "GOTOOLCHAIN=auto", "GOWORK=/tmp/go.work", "GOOS=darwin",
	}
	env := Env(base, "arm64")
	want := map[string]string{
		"PATH": "/usr/bin", "HOME": "/home/peer", "GOPROXY": "http://proxy", "GOFLAGS": "", "https_proxy": "http://p:3128",
		"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "arm64", "GOTOOLCHAIN": "local", "GOWORK": "off",
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := got[k]; dup {
			t.Errorf("%s set twice", k)
		}
		got[k] = v
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s=%q (set: %v), want %q", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s passed to go", k)
		}
	}

	// No HOME: caches in a kubecc folder of the temporary directory.
	env = Env([]string{"PATH=/usr/bin"}, "amd64")
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		if !strings.HasPrefix(lookup(env, k), filepath.Join(os.TempDir(), "kubecc-go")) {
			t.Errorf("no HOME: %s=%q", k, lookup(env, k))
		}
	}
}

// What the go command is really started with: a stand-in go on PATH records its
// environment.
func TestBuildStartsGoWithTheAllowListOnly(t *testing.T) {
	fake := t.TempDir()
	record := filepath.Join(fake, "env.txt")
	script := "#!/bin/sh\nenv > '" + record + "'\n"
	if err := os.WriteFile(filepath.Join(fake, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	path := fake + string(os.PathListSeparator) + os.Getenv("PATH")
	t.Setenv("PATH", path)
	hostGOPATH := t.TempDir()
	env := []string{"PATH=" + path, "HOME=" + t.TempDir(), "GOPATH=" + hostGOPATH, "FOO_SECRET=hunter2", "CORE_PEER_TLS_KEY_FILE=/k.pem", "CORE_PEER_MSPCONFIGPATH=/msp"}

	for name, files := range map[string]map[string]string{
		"module": {"src/go.mod": "module example.com/cc\n\ngo 1.22\n", "src/main.go": mainGo},
		"GOPATH": {"src/example.com/cc/main.go": mainGo},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, files)
			_ = os.Remove(record)
			if _, err := build(t, dir, "example.com/cc", env); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(record)
			if err != nil {
				t.Fatal(err)
			}
			got := "\n" + string(data)
			for _, bad := range []string{"FOO_SECRET", "CORE_PEER"} {
				if strings.Contains(got, "\n"+bad) {
					t.Errorf("%s reached go:\n%s", bad, data)
				}
			}
			for _, good := range []string{"\nCGO_ENABLED=0\n", "\nGOTOOLCHAIN=local\n", "\nGOWORK=off\n", "\nGOOS=linux\n", "\nGOARCH=amd64\n"} {
				if !strings.Contains(got, good) {
					t.Errorf("%s missing:\n%s", strings.TrimSpace(good), data)
				}
			}
			wantGOPATH := "\nGOPATH=" + hostGOPATH + "\n" // module mode: the operator's (module cache)
			if name == "GOPATH" {
				wantGOPATH = "\nGOPATH=" + dir + "\n" // the package alone
			}
			if !strings.Contains(got, wantGOPATH) {
				t.Errorf("want %s in:\n%s", strings.TrimSpace(wantGOPATH), data)
			}
		})
	}
}

// GOPATH mode: the package cannot import code the peer host keeps in its GOPATH.
func TestGOPATHModeDoesNotSeeTheHostGOPATH(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go")
	}
	host := t.TempDir()
	write(t, host, map[string]string{"src/example.com/hostlib/lib.go": "package hostlib\n\nconst Secret = \"PEER-HOST\"\n"})
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"src/example.com/cc/main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/hostlib\"\n)\n\nfunc main() { fmt.Println(hostlib.Secret) }\n",
	})
	_, err := build(t, dir, "example.com/cc", testEnv("GOPATH="+host))
	if err == nil || !strings.Contains(err.Error(), "example.com/hostlib") {
		t.Fatalf("build error %v, want example.com/hostlib not found", err)
	}
	// The package's own GOPATH still works.
	write(t, dir, map[string]string{"src/example.com/hostlib/lib.go": "package hostlib\n\nconst Secret = \"in-package\"\n"})
	out, err := build(t, dir, "example.com/cc", testEnv("GOPATH="+host))
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, out, "in-package\n")
}

func TestLinksInThePackageAreRefused(t *testing.T) {
	host := t.TempDir()
	write(t, host, map[string]string{"go.mod": "module example.com/leak\n", "leak.go": "package leak\n"})
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"src/go.mod":  "module example.com/cc\n\ngo 1.22\n\nrequire example.com/leak v0.0.0\n\nreplace example.com/leak => ./leak\n",
		"src/main.go": mainGo,
	})
	if err := os.Symlink(host, filepath.Join(dir, "src", "leak")); err != nil {
		t.Fatal(err)
	}
	_, err := build(t, dir, "example.com/cc", testEnv())
	if err == nil || !strings.Contains(err.Error(), "src/leak is not a regular file") {
		t.Fatalf("error %v", err)
	}
}

func TestAssemblyIncludesStayInThePackage(t *testing.T) {
	const gomod = "module example.com/cc\n\ngo 1.22\n"
	cases := map[string]struct {
		files map[string]string
		want  string
	}{
		"toolchain header":   {map[string]string{"src/f_amd64.s": "#include \"textflag.h\"\n"}, ""},
		"in-package header":  {map[string]string{"src/f_amd64.s": "#include \"inc/x.h\"\n", "src/inc/x.h": "#define X 1\n"}, ""},
		"absolute":           {map[string]string{"src/f_amd64.s": "#include \"/etc/passwd\"\n"}, `src/f_amd64.s: #include "/etc/passwd": names a file outside the package`},
		"escaped absolute":   {map[string]string{"src/f_amd64.s": "#include \"\\x2fetc/passwd\"\n"}, "outside the package"},
		"dot dot":            {map[string]string{"src/f_amd64.s": "#include \"../../x.h\"\n"}, "outside the package"},
		"comment in between": {map[string]string{"src/f_amd64.s": "# /* c */ include /* d */ \"/etc/passwd\"\n"}, "outside the package"},
		"from an included header": {map[string]string{"src/f_amd64.s": "#include \"x.h\"\n", "src/x.h": "#include \"/etc/hostname\"\n"},
			`src/x.h: #include "/etc/hostname"`},
		"include cycle": {map[string]string{"src/f_amd64.s": "#include \"x.h\"\n", "src/x.h": "#include \"x.h\"\n"}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			files := map[string]string{"src/go.mod": gomod}
			for k, v := range tc.files {
				files[k] = v
			}
			err := checkModuleLayout(t, files)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// The assembler really does open such a name (the reason for the check): without
// the check, a value defined in a host file ends up in the binary.
func TestAssemblerWouldReadOutside(t *testing.T) {
	if testing.Short() || runtime.GOARCH != "amd64" {
		t.Skip("compiles amd64 assembly")
	}
	host := t.TempDir()
	write(t, host, map[string]string{"secret.h": "#define SECRET $0x5ec2e7\n"})
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"go.mod":  "module example.com/cc\n\ngo 1.22\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc f() int\n\nfunc main() { fmt.Println(f()) }\n",
		"f_amd64.s": "#include \"textflag.h\"\n#include \"" + filepath.Join(host, "secret.h") + "\"\n\n" +
			"TEXT ·f(SB),NOSPLIT,$0-8\n\tMOVQ SECRET, AX\n\tMOVQ AX, ret+0(FP)\n\tRET\n",
	})
	bin := filepath.Join(t.TempDir(), "x")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = setenv(Env(testEnv(), "amd64"), "GO111MODULE", "on")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	mustRun(t, bin, "6210279\n") // 0x5ec2e7, read from the host file
	if err := CheckPackage(dir, Layout{Dir: dir, Module: true}); err == nil || !strings.Contains(err.Error(), "f_amd64.s: #include") {
		t.Fatalf("CheckPackage: %v", err)
	}
}

// metadata.json's path reaches the go command's command line: a flag there
// (-toolexec) would run a program of the package's choice on the peer host.
func TestPathIsAnImportPathNotAFlag(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "PWNED")
	dir := t.TempDir()
	write(t, dir, map[string]string{"src/go.mod": "module example.com/cc\n\ngo 1.22\n", "src/main.go": mainGo})
	for _, path := range []string{
		`-toolexec=/bin/sh -c "touch ` + marker + `; exec \"$0\" \"$@\""`,
		"-toolexec=/usr/bin/touch " + marker,
		"-o=/tmp/x", "../..", "/etc", "./x", "example.com//cc", "example.com/cc/", "example.com/../cc", "example.com/cc\n-x",
	} {
		_, err := build(t, dir, path, testEnv())
		if err == nil || !strings.Contains(err.Error(), `metadata.json: field "path"`) {
			t.Errorf("path %q: error %v", path, err)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("path %q ran a program", path)
		}
		if got := (&Language{}).SourceDir(dir, &chaincode.Metadata{Path: path}); got != filepath.Join(dir, "src") {
			t.Errorf("path %q: SourceDir %s", path, got)
		}
	}
	for _, path := range []string{"", ".", "example.com/cc", "github.com/hyperledger/fabric-samples/asset-transfer-basic/chaincode-go", "example.com/a_b~c+d-e.f"} {
		if err := CheckImportPath(path); err != nil {
			t.Errorf("path %q: %v", path, err)
		}
	}
}
