package node

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/kubecc/kubecc/pkg/image"

	"github.com/kubecc/kubecc/pkg/tail"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadPackageJSON(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		err   string
		lock  string
		build bool
	}{
		{"plain", map[string]string{"package.json": `{"scripts":{"start":"fabric-chaincode-node start"}}`}, "", "", false},
		{"lock", map[string]string{"package.json": `{"scripts":{"start":"x"}}`, "package-lock.json": "{}"}, "", "package-lock.json", false},
		{"shrinkwrap wins", map[string]string{"package.json": `{"scripts":{"start":"x","build":"tsc"}}`, "package-lock.json": "{}", "npm-shrinkwrap.json": "{}"}, "", "npm-shrinkwrap.json", true},
		{"missing", map[string]string{"index.js": ""}, "src/package.json: missing", "", false},
		{"no start", map[string]string{"package.json": `{"scripts":{"build":"tsc"}}`}, `src/package.json: field "scripts.start" is missing`, "", false},
		{"no scripts", map[string]string{"package.json": `{"name":"x"}`}, `src/package.json: field "scripts.start" is missing`, "", false},
		{"not json", map[string]string{"package.json": `{`}, "src/package.json: not valid JSON", "", false},
		{"start not a string", map[string]string{"package.json": `{"scripts":{"start":1}}`}, "src/package.json: not valid JSON", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			pkg, err := ReadPackageJSON(dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pkg.Lockfile != tc.lock || pkg.HasBuild() != tc.build {
				t.Fatalf("%+v", pkg)
			}
		})
	}
}

// runLauncher runs the entry point's shell line with start script "printf %s,"
// (so the chaincode's arguments come out each followed by a comma) and returns them.
func runLauncher(t *testing.T, env []string, args ...string) []string {
	t.Helper()
	ep, mode := Entrypoint(&PackageJSON{Scripts: map[string]string{"start": "printf %s,"}})
	if !strings.Contains(mode, "without npm") {
		t.Fatalf("mode %q", mode)
	}
	cmd := exec.Command(ep[0], append(ep[1:], args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if string(out) == "," { // printf prints its format once even with no arguments
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(out), ","), ",")
}

func TestLauncherPeerAddress(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"run's one-dash flag", nil, []string{"-peer.address=10.0.0.1:7052"}, []string{"--peer.address=10.0.0.1:7052"}},
		{"flag wins over env", []string{"CORE_PEER_ADDRESS=other:1"}, []string{"-peer.address=10.0.0.1:7052", "--x"}, []string{"--peer.address=10.0.0.1:7052", "--x"}},
		{"env alone", []string{"CORE_PEER_ADDRESS=peer0:7052"}, nil, []string{"--peer.address=peer0:7052"}},
		{"two-dash forms kept", []string{"CORE_PEER_ADDRESS=other:1"}, []string{"--peer.address", "p:1"}, []string{"--peer.address", "p:1"}},
		{"two-dash equals kept", []string{"CORE_PEER_ADDRESS=other:1"}, []string{"--peer.address=p:1"}, []string{"--peer.address=p:1"}},
		{"nothing", nil, nil, nil},
		{"odd arguments pass as they are", nil, []string{"a b", "-peer.addressX"}, []string{"a b", "-peer.addressX"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runLauncher(t, tc.env, tc.args...); !slices.Equal(got, tc.want) {
				t.Fatalf("args %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEntrypointModes(t *testing.T) {
	for start, direct := range map[string]bool{
		"fabric-chaincode-node start":                            true,
		"node dist/index.js --foo=bar":                           true,
		"fabric-chaincode-node start --chaincode-id-name=x":      true,
		"node index.js && echo done":                             false,
		"FOO=1 node index.js":                                    false,
		"node $npm_package_main":                                 false,
		"node 'index.js'":                                        false,
		"fabric-chaincode-node start; rm -rf /tmp/x":             false,
		"fabric-chaincode-node start\nnode other.js":             false,
		"fabric-chaincode-node start `id`":                       false,
		"fabric-chaincode-node start > /tmp/log":                 false,
		"fabric-chaincode-node start | tee":                      false,
		"fabric-chaincode-node start --peer.address=$(hostname)": false,
	} {
		ep, mode := Entrypoint(&PackageJSON{Scripts: map[string]string{"start": start}})
		line := ep[2]
		if got := strings.Contains(line, "exec "+start+` "$@"`); got != direct {
			t.Errorf("start %q: direct %v, want %v (%s)", start, got, direct, mode)
		}
		if !direct && !strings.Contains(line, `exec npm start -- "$@"`) {
			t.Errorf("start %q: not npm start: %s", start, line)
		}
		if ep[0] != "/bin/sh" || ep[1] != "-c" || ep[3] != "start" || len(ep) != 4 {
			t.Errorf("entry point %q", ep)
		}
	}
	for _, hook := range []string{"prestart", "poststart"} {
		ep, _ := Entrypoint(&PackageJSON{Scripts: map[string]string{"start": "node index.js", hook: "node prep.js"}})
		if !strings.Contains(ep[2], "exec npm start") {
			t.Errorf("%s: %s", hook, ep[2])
		}
	}
}

func TestEnvAllowList(t *testing.T) {
	home := t.TempDir()
	env := Env([]string{
		"PATH=/usr/bin", "HOME=" + home, "HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost",
		"NPM_CONFIG_REGISTRY=https://npm.example.com/", "npm_config_cache=/var/cache/npm", "npm_config_strict_ssl=true",
		"NODE_EXTRA_CA_CERTS=/etc/ca.pem", "NPM_CONFIG_IGNORE_SCRIPTS=true",
		// Not the operator's npm settings: dropped.
		"CORE_PEER_TLS_ROOTCERT_FILE=/x", "NODE_OPTIONS=--require /tmp/evil.js", "NODE_ENV=production",
		"npm_config_script_shell=/tmp/evil", "npm_config_node_options=--require /tmp/evil.js", "KUBECC_REGISTRY=r", "AWS_SECRET_ACCESS_KEY=k",
		"GOPROXY=off",
	})
	for _, want := range []string{
		"PATH=/usr/bin", "HOME=" + home, "HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost",
		"NPM_CONFIG_REGISTRY=https://npm.example.com/", "npm_config_cache=/var/cache/npm", "npm_config_strict_ssl=true",
		"NODE_EXTRA_CA_CERTS=/etc/ca.pem", "NPM_CONFIG_IGNORE_SCRIPTS=true",
		"npm_config_audit=false", "npm_config_fund=false", "npm_config_update_notifier=false",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("missing %s in %q", want, env)
		}
	}
	for _, kv := range env {
		for _, bad := range []string{"CORE_", "NODE_OPTIONS", "NODE_ENV", "script_shell", "node_options", "KUBECC_", "AWS_", "GOPROXY"} {
			if strings.Contains(kv, bad) {
				t.Errorf("%s passed to npm", kv)
			}
		}
	}
	// No HOME (or a read-only one): npm gets a writable cache.
	env = Env([]string{"PATH=/usr/bin"})
	if c := lookup(env, "npm_config_cache"); !strings.HasPrefix(c, os.TempDir()) {
		t.Errorf("cache %q", c)
	}
}

func TestCollect(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"package.json":                          "{}",
		"index.js":                              "",
		"node_modules/fabric-shim/cli.js":       "#!/usr/bin/env node\n",
		"node_modules/fabric-shim/package.json": "{}",
		"node_modules/@s/p/index.js":            "",
	})
	_ = os.Chmod(filepath.Join(dir, "node_modules/fabric-shim/cli.js"), 0o700)
	_ = os.MkdirAll(filepath.Join(dir, "node_modules/.bin"), 0o755)
	if err := os.Symlink("../fabric-shim/cli.js", filepath.Join(dir, "node_modules/.bin/fabric-chaincode-node")); err != nil {
		t.Fatal(err)
	}
	mods, app, err := Collect(dir, AppDir)
	if err != nil {
		t.Fatal(err)
	}
	byPath := func(es []image.Entry) map[string]image.Entry {
		m := map[string]image.Entry{}
		for _, e := range es {
			m[e.Path] = e
		}
		return m
	}
	m, a := byPath(mods), byPath(app)
	if e := m[AppDir+"/node_modules/.bin/fabric-chaincode-node"]; e.Link != "../fabric-shim/cli.js" {
		t.Errorf("link %+v", e)
	}
	if e := m[AppDir+"/node_modules/fabric-shim/cli.js"]; e.Mode != 0o755 || string(e.Data) != "#!/usr/bin/env node\n" {
		t.Errorf("exec file %+v", e)
	}
	if e := m[AppDir+"/node_modules/fabric-shim/package.json"]; e.Mode != 0o644 {
		t.Errorf("file %+v", e)
	}
	if _, ok := m[AppDir+"/node_modules"]; !ok {
		t.Error("node_modules folder not in its layer")
	}
	if _, ok := a[AppDir+"/package.json"]; !ok || len(a) != 3 {
		t.Errorf("application entries %v", a)
	}
	for p := range a {
		if strings.Contains(p, "node_modules") {
			t.Errorf("%s in the application layer", p)
		}
	}
	// Sorted walk: the same tree gives the same entries.
	mods2, app2, _ := Collect(dir, AppDir)
	if len(mods2) != len(mods) || len(app2) != len(app) {
		t.Fatal("not stable")
	}
	for i := range mods {
		if mods[i].Path != mods2[i].Path {
			t.Fatal("order differs")
		}
	}
}

func TestCollectRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		setup func(dir string) error
		want  string
	}{
		"absolute link": {func(d string) error { return os.Symlink("/etc/passwd", filepath.Join(d, "node_modules/x")) }, "node_modules/x is a link to /etc/passwd"},
		"link out":      {func(d string) error { return os.Symlink("../../secret", filepath.Join(d, "node_modules/x")) }, "outside the project"},
		"native addon": {func(d string) error {
			p := filepath.Join(d, "node_modules/@scope/bcrypt/build/Release/bcrypt_lib.node")
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			return os.WriteFile(p, []byte("\x7fELF\x02\x01\x01"), 0o755)
		}, "native addon (compiled code) of module @scope/bcrypt"},
		"native addon in the application": {func(d string) error {
			return os.WriteFile(filepath.Join(d, "addon.node"), []byte("\x7fELF\x02\x01\x01"), 0o755)
		}, "addon.node is a native addon (compiled code) of the application"},
		"pipe": {func(d string) error { return mkfifo(filepath.Join(d, "node_modules/fifo")) }, "not a regular file"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"package.json": "{}", "node_modules/ok/index.js": ""})
			if err := tc.setup(dir); err != nil {
				t.Skip(err)
			}
			if _, _, err := Collect(dir, AppDir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	// A .node file that is not compiled code (not ELF) is only data.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"node_modules/x/file.node": "text"})
	if _, _, err := Collect(dir, AppDir); err != nil {
		t.Fatal(err)
	}
	// A link inside the project is kept.
	if err := checkLink("node_modules/.bin/tsc", "../typescript/bin/tsc"); err != nil {
		t.Fatal(err)
	}
}

func TestCopySourceLeavesOutNodeModules(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "app")
	writeFiles(t, src, map[string]string{"package.json": "{}", "lib/a.js": "", "node_modules/evil/index.js": "", "lib/node_modules/kept.js": ""})
	_ = os.Chmod(filepath.Join(src, "lib/a.js"), 0o700)
	if err := copySource(src, dst, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "node_modules")); !os.IsNotExist(err) {
		t.Error("src/node_modules copied")
	}
	if info, err := os.Stat(filepath.Join(dst, "lib/a.js")); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("lib/a.js: %v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "lib/node_modules/kept.js")); err != nil {
		t.Error(err)
	}
	_ = os.Symlink("/etc/passwd", filepath.Join(src, "link"))
	if err := copySource(src, filepath.Join(t.TempDir(), "app"), nil); err == nil || !strings.Contains(err.Error(), "src/link is not a regular file") {
		t.Errorf("link in src: %v", err)
	}
}

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }

func TestLastLines(t *testing.T) {
	tb := &tail.Buffer{Max: 16 << 10}
	_, _ = tb.Write([]byte("npm error code EUSAGE\nnpm error\nnpm error `npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync. Please update your lock file with `npm install` before continuing.\nnpm error\nnpm error Missing: left-pad@1.3.0 from lock file\nnpm error\nnpm error Clean install a project\nnpm error\nnpm error Usage:\nnpm error npm ci\nnpm error\nnpm error Options:\nnpm error [--install-strategy <hoisted|nested|shallow|linked>]\nnpm error A complete log of this run can be found in: /root/.npm/_logs/x.log\n"))
	want := "code EUSAGE | `npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync. Please update your lock file with `npm install` before continuing. | Missing: left-pad@1.3.0 from lock file"
	if got := lastLines(tb, 6); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	tb = &tail.Buffer{Max: 16 << 10}
	_, _ = tb.Write([]byte("> tsc\n\nUsage:\nsrc/a.ts(1,1): error TS1005: ';' expected.\nnpm error Lifecycle script `build` failed with error:\nnpm error code 2\n"))
	if got := lastLines(tb, 3); got != "src/a.ts(1,1): error TS1005: ';' expected. | Lifecycle script `build` failed with error: | code 2" {
		t.Errorf("got %q", got)
	}
}

func TestCheckLocalPaths(t *testing.T) {
	for pkgJSON, want := range map[string]string{
		`{"dependencies":{"a":"^1.0.0","b":"file:lib/b","c":"./vendor/c","d":"link:packages/d","e":"github:x/y","f":"npm:left-pad@1","g":"~5.9.3","h":">=1 <2"}}`: "",
		`{"dependencies":{"a":"file:../../etc"}}`:      `field "dependencies.a": "file:../../etc" leads outside the package`,
		`{"devDependencies":{"a":"link:/opt/secret"}}`: `field "devDependencies.a"`,
		`{"optionalDependencies":{"a":"../x"}}`:        `field "optionalDependencies.a"`,
		`{"peerDependencies":{"a":"~/x"}}`:             `field "peerDependencies.a"`,
		`{"dependencies":{"a":"file:///etc"}}`:         `field "dependencies.a"`,
		`{"dependencies":{"a":"file:lib/../../x"}}`:    `field "dependencies.a"`,
		`{"overrides":{"foo":{"bar":"file:../x"}}}`:    `field "overrides.foo.bar"`,
		`{"overrides":{"foo":"1.0.0"}}`:                "",
		`{"workspaces":["packages/*"]}`:                "",
		`{"workspaces":["../other"]}`:                  `field "workspaces": "../other"`,
		`{"workspaces":{"packages":["/abs"]}}`:         `field "workspaces": "/abs"`,
	} {
		err := checkLocalPaths([]byte(pkgJSON))
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: error %v, want %q", pkgJSON, err, want)
		}
	}
	// Check also wants the start script, as Compile does.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"src/package.json": `{"scripts":{"start":"x"},"dependencies":{"a":"file:../../a"}}`})
	if err := (&Language{}).Check(dir, nil); err == nil || !strings.Contains(err.Error(), "src/package.json: field \"dependencies.a\"") {
		t.Errorf("Check: %v", err)
	}
	writeFiles(t, dir, map[string]string{"src/package.json": `{"dependencies":{}}`})
	if err := (&Language{}).Check(dir, nil); err == nil || !strings.Contains(err.Error(), "scripts.start") {
		t.Errorf("Check: %v", err)
	}
}
