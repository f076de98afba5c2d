package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubecc/kubecc/pkg/tail"
)

// InstallOptions of one npm install.
type InstallOptions struct {
	// Dir is the project (a private copy of the package's src/).
	Dir     string
	Package *PackageJSON
	// Env is the hook's environment; only the operator's npm, proxy and certificate
	// settings are taken from it (see Env).
	Env []string
	// Log receives npm's output and progress lines.
	Log io.Writer
}

// Install installs the project's dependencies in opts.Dir the way Fabric's Node
// platform does, and runs its build script when it has one:
//
//	no "build" script:  npm ci --omit=dev                         (npm install --omit=dev without a lockfile)
//	a "build" script:   npm ci --include=dev; npm run build; npm prune --omit=dev
func Install(ctx context.Context, opts InstallOptions) error {
	pkg := opts.Package
	install := []string{"install"}
	if pkg.Lockfile != "" {
		install = []string{"ci"}
	}
	env := Env(opts.Env)
	run := func(what string, args ...string) error {
		return npm(ctx, opts.Dir, env, opts.Log, what, args...)
	}
	// npm ci's failures are about the lockfile (out of date with package.json).
	lock := "src/package.json"
	if pkg.Lockfile != "" {
		lock = "src/" + pkg.Lockfile
	}
	if !pkg.HasBuild() {
		return run(lock, append(install, "--omit=dev")...)
	}
	// --include=dev: the build needs its compiler even if the project's .npmrc says
	// production.
	if err := run(lock, append(install, "--include=dev")...); err != nil {
		return err
	}
	if err := run(fmt.Sprintf("src/package.json: script \"build\" (%s)", pkg.Scripts["build"]), "run", "build"); err != nil {
		return err
	}
	return run("src/package.json", "prune", "--omit=dev")
}

// npm runs one npm command in dir, its output to log; a failure is an error naming
// what (the file or field it concerns) with npm's last lines.
func npm(ctx context.Context, dir string, env []string, log io.Writer, what string, args ...string) error {
	logf(log, "npm %s (%s)", strings.Join(args, " "), what)
	start := time.Now()
	kept := &tail.Buffer{Max: 16 << 10}
	out := io.Writer(kept)
	if log != nil {
		out = io.MultiWriter(log, kept)
	}
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = out
	// npm's children (install and build scripts, tsc) end with it: its own process
	// group is killed on cancel.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		logf(log, "npm %s done in %s", args[0], time.Since(start).Round(time.Millisecond))
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("npm %s: %w", strings.Join(args, " "), ctx.Err())
	}
	var notFound *exec.Error
	if errors.As(err, &notFound) {
		return fmt.Errorf("npm %s: %w (Node.js builds need npm on PATH, or buildIn cluster)", args[0], err)
	}
	msg := fmt.Sprintf("%s: npm %s failed: %v", what, strings.Join(args, " "), err)
	if last := lastLines(kept, 6); last != "" {
		msg += ": " + last
	}
	return errors.New(msg)
}

// Env returns npm's environment: the operator's settings from base (an
// allow-list), nothing else of the peer's environment (its keys, CORE_*
// settings, NODE_OPTIONS, NODE_ENV...); no audit, funding or update requests to
// the registry; and a writable cache even when HOME is missing or read-only (a
// build Job's root file system).
func Env(base []string) []string {
	// The npm settings (npm_config_<name>, any case) taken from base: where
	// packages come from, through which proxy, trusting which certificates, where
	// npm keeps its cache and user config, and whether it runs dependencies'
	// install scripts (ignore-scripts: an operator's hardening).
	npmConfig := map[string]bool{
		"registry": true, "cache": true, "userconfig": true, "globalconfig": true,
		"ignore_scripts": true, "allow_scripts": true, "strict_allow_scripts": true,
		"proxy": true, "https_proxy": true, "noproxy": true,
		"cafile": true, "ca": true, "strict_ssl": true,
		"prefer_offline": true, "offline": true, "prefer_online": true,
		"fetch_retries": true, "fetch_retry_mintimeout": true, "fetch_retry_maxtimeout": true, "fetch_timeout": true,
		"maxsockets": true,
	}
	// The other variables taken from base.
	passEnv := []string{
		"PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
		"SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
	}
	var env []string
	hasCache := false
	for _, kv := range base {
		key, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		lower := strings.ToLower(key)
		if name, ok := strings.CutPrefix(lower, "npm_config_"); ok && npmConfig[name] {
			env = append(env, kv)
			hasCache = hasCache || name == "cache"
			continue
		}
		for _, k := range passEnv {
			if key == k {
				env = append(env, kv)
			}
		}
	}
	if !hasCache && !writableDir(lookup(env, "HOME")) {
		env = append(env, "npm_config_cache="+filepath.Join(os.TempDir(), "kubecc-npm-cache"))
	}
	return append(env,
		"npm_config_audit=false",
		"npm_config_fund=false",
		"npm_config_update_notifier=false",
		"npm_config_progress=false",
	)
}

func lookup(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as with exec
		}
	}
	return v
}

// writableDir reports whether dir is a folder this process may write in.
func writableDir(dir string) bool {
	if dir == "" {
		return false
	}
	f, err := os.CreateTemp(dir, ".kubecc-write-test-*")
	if err != nil {
		return false
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	return true
}

// lastLines are the last n lines of output that say something, joined by " | ":
// npm's own "npm error" lines without the prefix, empty ones and the pointer to
// its log file dropped, and so is the usage text npm prints after a usage error
// (such as npm ci's lockfile out of date), which would hide the error itself.
func lastLines(t *tail.Buffer, n int) string {
	var lines []string
	for _, l := range bytes.Split(t.Bytes(), []byte("\n")) {
		s, fromNpm := strings.TrimSpace(string(l)), false
		for _, p := range []string{"npm error", "npm ERR!"} {
			if rest, ok := strings.CutPrefix(s, p); ok {
				s, fromNpm = strings.TrimSpace(rest), true
			}
		}
		if fromNpm && s == "Usage:" && len(lines) > 0 {
			// The usage follows the command's one-line description.
			lines = lines[:len(lines)-1]
			break
		}
		if s == "" || strings.HasPrefix(s, "A complete log of this run can be found in") {
			continue
		}
		lines = append(lines, s)
	}
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < n; i-- {
		keep = append(keep, lines[i])
	}
	for i, j := 0, len(keep)-1; i < j; i, j = i+1, j-1 {
		keep[i], keep[j] = keep[j], keep[i]
	}
	return strings.Join(keep, " | ")
}
