package main

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kubecc/kubecc/pkg/image"
)

// nsswitch makes /etc/hosts win over DNS: glibc's default without the file asks DNS
// first and stops at its "not found", so a Pod's hostAliases would be ignored.
const nsswitch = "passwd: files\ngroup: files\nhosts: files dns\n"

// nodeToolchain is the Node.js image's contents: the node binary nodeBin (a name is
// looked up on PATH), npm from npmDir ("": beside node), /bin/sh and /usr/bin/env, and
// the shared libraries of those three, all at the paths they have on this machine.
func nodeToolchain(nodeBin, npmDir string, caData []byte) (toolchain, error) {
	bin, err := exec.LookPath(nodeBin)
	if err != nil {
		return toolchain{}, err
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		return toolchain{}, err
	}
	arch, err := elfArch(bin)
	if err != nil {
		return toolchain{}, err
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return toolchain{}, fmt.Errorf("%s --version: %w", bin, err)
	}
	version := strings.TrimSpace(string(out))
	prefix := filepath.Dir(filepath.Dir(bin))
	if npmDir == "" {
		npmDir = filepath.Join(prefix, "lib", "node_modules", "npm")
	}
	if npmDir, err = filepath.EvalSymlinks(npmDir); err != nil {
		return toolchain{}, fmt.Errorf("npm: %w (set -npm)", err)
	}
	npmVersion, err := packageVersion(filepath.Join(npmDir, "package.json"))
	if err != nil {
		return toolchain{}, err
	}

	sys := append(system("node", caData), image.Entry{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: []byte(nsswitch)})
	// The image's paths are the machine's with folder links resolved, so that on a
	// /usr-merged machine everything lands under /usr and the root links reach it.
	for _, d := range []string{"/bin", "/lib", "/lib64"} {
		if info, err := os.Lstat(d); err == nil && info.Mode()&os.ModeSymlink != 0 {
			to, err := os.Readlink(d)
			if err != nil {
				return toolchain{}, err
			}
			sys = append(sys, image.Entry{Path: d, Link: to})
		}
	}

	// /bin/sh and /usr/bin/env by those very paths: the chaincode's entry point and npm
	// run /bin/sh, and the scripts of npm and of node_modules/.bin start with #!/usr/bin/env.
	shared := map[string]image.Entry{}
	shLink, sh, err := link("/bin/sh")
	if err != nil {
		return toolchain{}, err
	}
	if shLink.Link != "" {
		shared[shLink.Path] = shLink
	}
	for _, exe := range []string{sh, "/usr/bin/env"} {
		if err := addExecutable(shared, exe); err != nil {
			return toolchain{}, err
		}
	}
	// The node binary goes in the Node.js layer; its libraries here, with the others.
	nodeEntry, err := hostFile(bin)
	if err != nil {
		return toolchain{}, err
	}
	if err := addLibs(shared, bin); err != nil {
		return toolchain{}, err
	}
	libEntries := make([]image.Entry, 0, len(shared))
	for _, e := range shared {
		libEntries = append(libEntries, e)
	}

	npmTarget, err := imagePath(npmDir)
	if err != nil {
		return toolchain{}, err
	}
	npm, err := tree(npmDir, npmTarget, nil)
	if err != nil {
		return toolchain{}, err
	}
	npm = append(npm, nodeEntry)
	for _, cmd := range []string{"npm", "npx"} {
		l, to, err := link(filepath.Join(prefix, "bin", cmd))
		if err != nil {
			return toolchain{}, err
		}
		if l.Link == "" || !strings.HasPrefix(to, npmDir+"/") {
			return toolchain{}, fmt.Errorf("%s: not a link into %s", l.Path, npmDir)
		}
		npm = append(npm, l)
	}

	v := strings.TrimPrefix(version, "v")
	return toolchain{
		source:  fmt.Sprintf("%s (Node.js %s, npm %s)", bin, version, npmVersion),
		arch:    arch,
		title:   "node",
		version: v,
		desc:    fmt.Sprintf("Node.js %s and npm %s with this machine's shared libraries and /bin/sh (user 10001)", version, npmVersion),
		layers: []image.Contents{
			{Entries: sys, CreatedBy: "toolimage: users, nsswitch.conf, CA bundle, /tmp, root links into /usr"},
			{Entries: libEntries, CreatedBy: "toolimage: /bin/sh, /usr/bin/env and the shared libraries of node, sh and env"},
			{Entries: npm, CreatedBy: fmt.Sprintf("toolimage: Node.js %s and npm %s", version, npmVersion)},
		},
		env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"HOME=/tmp",
			"NPM_CONFIG_CACHE=/tmp/.npm",
			"NPM_CONFIG_UPDATE_NOTIFIER=false",
			// Node trusts only the CAs compiled into it unless told otherwise; the bundle
			// is this machine's, which may hold a TLS-inspecting proxy's CA that npm needs.
			"NODE_EXTRA_CA_CERTS=" + caPath,
			"NODE_VERSION=" + v,
		},
		cmd: []string{"node"},
	}, nil
}

// imagePath is p with the links among its folders resolved: the path the file has in
// the image, where only the root links of a /usr-merged layout exist.
func imagePath(p string) (string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(p)), nil
}

// hostFile is the file at p (links followed) as an entry at its image path.
func hostFile(p string) (image.Entry, error) {
	target, err := imagePath(p)
	if err != nil {
		return image.Entry{}, err
	}
	return file(p, target)
}

// link returns p as a link entry at its image path, with its target as on the machine,
// and the file it leads to. A p that is no link gives an entry without Link, and p.
func link(p string) (image.Entry, string, error) {
	target, err := imagePath(p)
	if err != nil {
		return image.Entry{}, "", err
	}
	info, err := os.Lstat(p)
	if err != nil {
		return image.Entry{}, "", err
	}
	if info.Mode()&os.ModeSymlink == 0 {
		return image.Entry{Path: target}, p, nil
	}
	to, err := os.Readlink(p)
	if err != nil {
		return image.Entry{}, "", err
	}
	dest, err := filepath.EvalSymlinks(p)
	if err != nil {
		return image.Entry{}, "", err
	}
	return image.Entry{Path: target, Link: to}, dest, nil
}

// addExecutable adds the file at p and its shared libraries to set, by image path.
func addExecutable(set map[string]image.Entry, p string) error {
	e, err := hostFile(p)
	if err != nil {
		return err
	}
	set[e.Path] = e
	return addLibs(set, p)
}

// addLibs adds the shared libraries ldd lists for p (the dynamic loader included) to
// set, links resolved: the loader finds them by the names it lists.
func addLibs(set map[string]image.Entry, p string) error {
	libs, err := sharedLibs(p)
	if err != nil {
		return err
	}
	for _, l := range libs {
		e, err := hostFile(l)
		if err != nil {
			return err
		}
		set[e.Path] = e
	}
	return nil
}

// sharedLibs are the paths ldd resolves for p's shared libraries, and p's loader; none
// for a static executable. ldd follows the dependencies of dependencies, and the
// loader's search path, which reading the ELF file alone would have to redo.
func sharedLibs(p string) ([]string, error) {
	out, err := exec.Command("ldd", p).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", p, err, strings.TrimSpace(string(out)))
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.Contains(line, "not found"):
			return nil, fmt.Errorf("ldd %s: %s", p, strings.TrimSpace(line))
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}

// elfArch is the GOARCH name of the machine an ELF executable is for.
func elfArch(p string) (string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_PPC64:
		if f.Data == elf.ELFDATA2LSB {
			return "ppc64le", nil
		}
	case elf.EM_S390:
		return "s390x", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	}
	return "", fmt.Errorf("%s: ELF machine %v: set -arch", p, f.Machine)
}

// packageVersion is the "version" field of a package.json.
func packageVersion(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	if pkg.Version == "" {
		return "", fmt.Errorf("%s: no version", p)
	}
	return pkg.Version, nil
}
