// Package golang is the Go language of the build pipeline: it compiles the Go
// chaincode of a peer package with the Go toolchain on PATH into a static linux
// binary, laid out the way the peer's own Go platform builds it (module at src/,
// module at src/<path>/, or GOPATH).
//
// A package is installed by a peer admin but can be written by anyone, so a build
// must read nothing outside the package (and run none of its code). The go command
// itself is trusted; what the package can say to it is not. Build therefore:
//
//   - refuses links and special files anywhere in the package (the go command follows
//     a linked folder, and a linked replace target or package folder would lead out);
//   - refuses a go.mod `replace` whose target is a folder outside the package
//     (absolute, or `..` leaving it), in the main module and, recursively, in every
//     in-package module a replace leads to;
//   - refuses an `#include` in assembly (.s) files that names an absolute path or
//     uses `..`: the Go assembler opens such a name as it is, outside the package;
//   - ignores a go.work (GOWORK=off), downloads no toolchain (GOTOOLCHAIN=local: a
//     go.mod asking for a newer Go fails with the go command's own one-line error),
//     compiles no C (CGO_ENABLED=0: no cgo flags, no C compiler, no pkg-config), and
//     runs the go command in an environment made of the operator's Go settings only;
//   - in GOPATH mode, uses the package alone as GOPATH.
//
// What it leaves alone, and why: the go.mod `toolchain` line (only a preference,
// which GOTOOLCHAIN=local never acts on); `godebug` lines and //go:debug (they set
// the GODEBUG defaults of the chaincode binary, not of the go command that builds
// it); `tool`, `ignore`, `exclude` and `retract` (they read nothing);  a replace by
// another module version (fetched through the operator's GOPROXY and checked
// against go.sum like any requirement); default.pgo (an in-package profile that
// changes optimization only); //go:embed (the go command confines patterns to the
// module's own folder and refuses `..` and links). go build runs no package code:
// no go generate, no -toolexec, no cgo.
package golang

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/kubecc/kubecc/pkg/fsutil"
	tailbuf "github.com/kubecc/kubecc/pkg/tail"
)

// Options of one build.
type Options struct {
	// SrcDir is the unpacked code.tar.gz: it holds src/. Everything under it is the
	// package, and nothing outside it is read.
	SrcDir string
	// Path is metadata.json's path: the import path of the main package.
	Path string
	// GOARCH of the binary.
	GOARCH string
	// Out is the binary to write.
	Out string
	// Env is the hook's environment (which the peer pruned); only the operator's Go,
	// proxy and certificate settings are taken from it (see Env).
	Env []string
	// Log receives the toolchain's output and progress lines.
	Log io.Writer
}

// Layout is how the package's source is arranged.
type Layout struct {
	Dir     string // where to run go build
	Target  string // what to build
	Module  bool
	Vendor  bool
	Summary string
}

// DetectLayout mirrors the peer's Go platform: src/go.mod, then src/<path>/go.mod,
// else GOPATH mode with SrcDir as GOPATH.
//
// importPath comes from the package: it must be "" or "." (the module at src/) or a
// valid import path. Anything else is refused before it can reach the go command's
// command line, where "-toolexec=..." would run a program of the package's choice
// and "../.." would name a folder outside the package.
func DetectLayout(srcDir, importPath string) (Layout, error) {
	if err := CheckImportPath(importPath); err != nil {
		return Layout{}, err
	}
	src := filepath.Join(srcDir, "src")
	if fsutil.IsFile(filepath.Join(src, "go.mod")) {
		target := importPath
		if target == "" {
			target = "."
		}
		return Layout{Dir: src, Target: target, Module: true, Vendor: isDir(filepath.Join(src, "vendor")), Summary: "module at src/"}, nil
	}
	if importPath == "" {
		return Layout{}, fmt.Errorf("metadata.json: field \"path\" is empty and src/go.mod does not exist")
	}
	pkgDir := filepath.Join(src, filepath.FromSlash(importPath))
	if fsutil.IsFile(filepath.Join(pkgDir, "go.mod")) {
		return Layout{Dir: pkgDir, Target: ".", Module: true, Vendor: isDir(filepath.Join(pkgDir, "vendor")), Summary: "module at src/" + importPath}, nil
	}
	if !isDir(pkgDir) {
		return Layout{}, fmt.Errorf("metadata.json: field \"path\": no src/go.mod and no folder src/%s in the package", importPath)
	}
	return Layout{Dir: srcDir, Target: importPath, Summary: "GOPATH"}, nil
}

// CheckImportPath accepts metadata.json's path: "", "." or a valid Go import path
// (no leading dash, no "." or ".." element, not absolute, no odd characters).
func CheckImportPath(importPath string) error {
	if importPath == "" || importPath == "." {
		return nil
	}
	if err := module.CheckImportPath(importPath); err != nil {
		var perr *module.InvalidPathError
		if errors.As(err, &perr) {
			err = perr.Err
		}
		return fmt.Errorf("metadata.json: field \"path\": %q is not an import path: %w", importPath, err)
	}
	return nil
}

// Build compiles the chaincode into opts.Out.
func Build(ctx context.Context, opts Options) error {
	layout, err := DetectLayout(opts.SrcDir, opts.Path)
	if err != nil {
		return err
	}
	if err := CheckPackage(opts.SrcDir, layout); err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", opts.Out}
	env := Env(opts.Env, opts.GOARCH)
	if layout.Module {
		if layout.Vendor {
			args = append(args, "-mod=vendor")
		} else {
			args = append(args, "-mod=readonly")
		}
		env = setenv(env, "GO111MODULE", "on")
	} else {
		// The package alone: the operator's GOPATH would let the package import
		// whatever code the peer host keeps there.
		env = setenv(env, "GO111MODULE", "off")
		env = setenv(env, "GOPATH", opts.SrcDir)
	}
	// "--": the target is never taken for a flag (CheckImportPath refuses a leading
	// dash already).
	args = append(args, "--", layout.Target)
	if opts.Log != nil {
		_, _ = fmt.Fprintf(opts.Log, "kubecc: go %s (%s, GOARCH=%s)\n", strings.Join(args, " "), layout.Summary, opts.GOARCH)
	}
	tail := &tailbuf.Buffer{Max: 4 << 10} // the go command's last line names the failure
	out := io.Writer(tail)
	if opts.Log != nil {
		out = io.MultiWriter(opts.Log, tail)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = layout.Dir
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Run(); err != nil {
		if last := tail.LastLine(); last != "" {
			return fmt.Errorf("go build %s: %w: %s", layout.Target, err, last)
		}
		return fmt.Errorf("go build %s: %w", layout.Target, err)
	}
	return nil
}

// CheckPackage refuses a package that would make the go command read outside
// srcDir: links or special files, a go.mod replace leading out of the package, an
// assembly #include naming a path outside it. Errors name the file, relative to
// srcDir.
func CheckPackage(srcDir string, layout Layout) error {
	// Work on the real path: the peer's TMPDIR may be reached through a link, and
	// checkTree must descend into the package itself.
	resolved, err := filepath.EvalSymlinks(srcDir)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(srcDir, layout.Dir); err == nil {
		layout.Dir = filepath.Join(resolved, rel)
	}
	srcDir = resolved
	asm, err := checkTree(srcDir)
	if err != nil {
		return err
	}
	if layout.Module {
		// vendor/modules.txt does not matter: with -mod=vendor the go command loads
		// every package from vendor/ (inside the package) and only compares
		// modules.txt with go.mod, never reading a replacement folder. The go.mod
		// check below still applies to vendored modules, so that one rule holds.
		if err := checkModule(srcDir, layout.Dir, map[string]bool{}); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, s := range asm {
		if err := checkAsm(srcDir, s, filepath.Dir(s), seen); err != nil {
			return err
		}
	}
	return nil
}

// checkTree refuses anything but regular files and folders below root, and returns
// the assembly files.
func checkTree(root string) ([]string, error) {
	var asm []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file (links, devices and pipes are refused: the build would read through them)", relName(root, p))
		}
		if d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".s") {
			asm = append(asm, p)
		}
		return nil
	})
	return asm, err
}

// checkModule checks the go.mod in dir and, recursively, the go.mod of every
// in-package folder its replaces lead to (seen guards against cycles).
//
// The go command applies only the main module's replaces; those of other modules
// are checked as well so that the rule is simple and holds whichever in-package
// module ends up the main one.
func checkModule(root, dir string, seen map[string]bool) error {
	dir = filepath.Clean(dir)
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	file := filepath.Join(dir, "go.mod")
	name := relName(root, file)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) && len(seen) > 1 {
		return nil // a replacement folder without go.mod: the go command says so
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// Strict parsing, as the go command parses the main module: a directive this
	// parser does not know could be a way out, so it is refused rather than skipped.
	f, err := modfile.Parse(name, data, nil)
	if err != nil {
		return oneLine(err)
	}
	for _, r := range f.Replace {
		if r.New.Version != "" {
			continue // another module version, from the module proxy: not a folder
		}
		old := r.Old.Path
		if r.Old.Version != "" {
			old += " " + r.Old.Version
		}
		target := filepath.FromSlash(r.New.Path)
		abs := filepath.Join(dir, target)
		if filepath.IsAbs(target) || !inside(root, abs) {
			return fmt.Errorf("%s: replace %s => %s: target is outside the package", name, old, r.New.Path)
		}
		if err := checkModule(root, abs, seen); err != nil {
			return err
		}
	}
	return nil
}

// asmInclude matches an assembler #include with its Go string literal; the
// assembler unquotes it (escapes included) and opens the name as it is first, then
// relative to its include folders.
// Blanks and comments may stand between #, include and the name (the assembler's
// tokenizer skips comments), so they are allowed here too.
var asmInclude = regexp.MustCompile(`#(?:\s|/\*(?s:.*?)\*/)*include(?:\s|/\*(?s:.*?)\*/)*("(?:[^"\\\n]|\\.)*"|<[^>\n]*>|\x60[^\x60\n]*\x60)`)

// checkAsm refuses an #include in an assembly file (or a file it includes) that
// names an absolute path or uses `..`. A plain relative name resolves inside the
// package folder (the assembler's working folder), the build's work folder or the
// toolchain's own headers (textflag.h). dir is the folder of the .s file that
// started it, which included names resolve against.
func checkAsm(root, file, dir string, seen map[string]bool) error {
	key := dir + "\x00" + file
	if seen[key] {
		return nil
	}
	seen[key] = true
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s: %w", relName(root, file), err)
	}
	for _, m := range asmInclude.FindAllSubmatch(data, -1) {
		lit := string(m[1])
		inc, err := strconv.Unquote(lit)
		if err != nil || lit[0] == '<' {
			inc = lit[1 : len(lit)-1]
		}
		if filepath.IsAbs(inc) || hasDotDot(inc) || strings.ContainsRune(inc, 0) {
			return fmt.Errorf("%s: #include %s: names a file outside the package (absolute paths and .. are refused)", relName(root, file), lit)
		}
		next := filepath.Join(dir, inc)
		if fsutil.IsFile(next) && inside(root, next) {
			if err := checkAsm(root, next, dir, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, part := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return true
		}
	}
	return false
}

// inside reports whether p (cleaned) is root or below it.
func inside(root, p string) bool {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func relName(root, p string) string {
	if rel, err := filepath.Rel(root, p); err == nil {
		return filepath.ToSlash(rel)
	}
	return p
}

// oneLine joins a multi-line error (modfile reports every bad line) into one line.
func oneLine(err error) error {
	msg := strings.TrimSpace(err.Error())
	if !strings.Contains(msg, "\n") {
		return err
	}
	return errors.New(strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", " ; ")), " "))
}

// Env returns the toolchain environment: the operator's settings from base (an
// allow-list), a static linux binary for goarch, and writable caches even when the
// peer propagated no HOME. Build adds GO111MODULE (and GOPATH in GOPATH mode).
func Env(base []string, goarch string) []string {
	// The operator's module, proxy, cache and certificate settings: nothing else of
	// the peer's environment (its keys, its CORE_* settings, GOEXPERIMENT,
	// GODEBUG, CC...) reaches the go command.
	passEnv := []string{
		"PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
		"GOPROXY", "GONOPROXY", "GOPRIVATE", "GONOSUMDB", "GONOSUMCHECK", "GOSUMDB", "GOINSECURE",
		"GOFLAGS", "GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT", "GOENV", "GOTMPDIR", "GOVCS", "GOAUTH", "NETRC",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
		"SSL_CERT_FILE", "SSL_CERT_DIR",
	}
	var env []string
	for _, key := range passEnv {
		if v, ok := lookupOK(base, key); ok {
			env = append(env, key+"="+v)
		}
	}
	if lookup(env, "HOME") == "" && lookup(env, "XDG_CACHE_HOME") == "" {
		root := filepath.Join(os.TempDir(), "kubecc-go")
		for _, kv := range [][2]string{{"GOCACHE", "cache"}, {"GOMODCACHE", "mod"}, {"GOPATH", "path"}} {
			if lookup(env, kv[0]) == "" {
				env = setenv(env, kv[0], filepath.Join(root, kv[1]))
			}
		}
	}
	for _, kv := range [][2]string{
		{"CGO_ENABLED", "0"}, // no C compiler, no #cgo flags from the package
		{"GOOS", "linux"},
		{"GOARCH", goarch},
		// Never download a toolchain a go.mod asks for (go or toolchain line): a
		// newer go line fails with "go.mod requires go >= X (running go Y;
		// GOTOOLCHAIN=local)", and the toolchain line is then only a preference.
		{"GOTOOLCHAIN", "local"},
		// A go.work in the package (or in a folder above it, on the peer host)
		// would add modules from anywhere (`use /somewhere`) and its own replaces:
		// workspaces are off, so it is ignored.
		{"GOWORK", "off"},
	} {
		env = setenv(env, kv[0], kv[1])
	}
	return env
}

// setenv sets key in env, replacing any earlier value.
func setenv(env []string, key, val string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+val)
}

func lookup(env []string, key string) string {
	v, _ := lookupOK(env, key)
	return v
}

func lookupOK(env []string, key string) (string, bool) {
	v, found := "", false
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v, found = val, true // the last one wins, as with exec
		}
	}
	return v, found
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}
