// Command toolimage packs a toolchain of this machine into an image and pushes it to a
// registry over plain HTTP (the e2e harness's local registry), without a Docker daemon.
// It stands in for the official images of the toolchains, so that the harness needs no
// access to Docker Hub. Two languages (-lang):
//
// go: the Go toolchain (a static GOROOT such as /usr/local/go), for Go build Jobs:
//
//	/usr/local/go                    GOROOT (its own layer: the big one), root-owned, read-only
//	/etc/passwd, /etc/group          root and build (uid/gid 10001, HOME /tmp), the user it runs as
//	/etc/ssl/certs/ca-certificates.crt  the CA bundle, for HTTPS to the module proxy
//	/tmp                             1777; HOME, GOPATH, GOMODCACHE and GOCACHE live under it,
//	                                 so one emptyDir at /tmp makes a read-only root file system work
//
// Env: PATH with /usr/local/go/bin, HOME=/tmp, GOPATH=/tmp/go, GOMODCACHE=/tmp/go/pkg/mod,
// GOCACHE=/tmp/go-build, GOTOOLCHAIN=local, CGO_ENABLED=0. No shell, no libc: the toolchain
// is static, and CGO_ENABLED=0 builds need neither. GOROOT's test/ and api/ folders and
// every testdata/ folder are left out (-exclude): building never reads them.
//
// node: Node.js and npm (a dynamically linked node, e.g. /usr/bin/node), both the runtime
// base of Node.js chaincode images (nodeBaseImage) and the toolchain of Node.js build Jobs
// (buildImages.node), in the layout of this machine (Debian 12: /usr merged):
//
//	/bin, /lib, /lib64               links into /usr, as on the machine (the ELF interpreter is /lib64/...)
//	/usr/bin/node                    the node binary
//	/usr/lib/node_modules/npm        npm; /usr/bin/npm and npx link into it, as on the machine
//	/usr/bin/sh -> dash, /usr/bin/env   npm runs scripts with sh, and its scripts start with #!/usr/bin/env node
//	shared libraries                 what ldd lists for node, sh and env (links resolved), at the paths it lists
//	/etc/passwd, /etc/group          root and node (uid/gid 10001, HOME /tmp), the user it runs as
//	/etc/nsswitch.conf, CA bundle, /tmp (1777)
//
// Env: PATH=/usr/local/bin:/usr/bin:/bin, HOME=/tmp, NPM_CONFIG_CACHE=/tmp/.npm,
// NPM_CONFIG_UPDATE_NOTIFIER=false, NODE_EXTRA_CA_CERTS (the CA bundle), NODE_VERSION;
// command node, no entry point.
//
// The image is reproducible: every time is the Unix epoch, owners are numeric, modes are
// normalised (0755 for folders and executables, 0644 otherwise), entries are sorted, so
// the same toolchain and CA bundle give the same digest and pushing again moves no blobs.
// Progress goes to stderr; the last line on stdout is name@digest.
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubecc/kubecc/pkg/image"
)

const (
	uid    = 10001
	caPath = "/etc/ssl/certs/ca-certificates.crt" // the CA bundle in the image
)

// toolchain is what one language contributes to the image.
type toolchain struct {
	source  string // what was read, for the log
	arch    string
	title   string // the OCI title label: the official image's name
	version string // the OCI version label, without a "go" or "v" prefix
	desc    string
	layers  []image.Contents
	env     []string
	cmd     []string
}

func main() {
	lang := flag.String("lang", "go", "the toolchain to pack: go or node")
	goSrc := flag.String("goroot", "", "-lang go: the toolchain to pack, a static GOROOT (default: `go env GOROOT`)")
	exclude := flag.String("exclude", "test,api", "-lang go: comma list of GOROOT top-level folders to leave out (testdata folders are always left out)")
	nodeBin := flag.String("node", "node", "-lang node: the node binary to pack (a name is looked up on PATH)")
	npmDir := flag.String("npm", "", "-lang node: npm's folder (default: lib/node_modules/npm beside node's bin folder)")
	ca := flag.String("ca", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to put at "+caPath)
	ref := flag.String("ref", "", "image reference to push to over plain HTTP; empty with -dry-run")
	arch := flag.String("arch", "", "image architecture (default: the toolchain's own: GOROOT/pkg/tool/linux_ARCH, node's ELF header)")
	dryRun := flag.Bool("dry-run", false, "assemble and print the digest, push nothing")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("toolimage: ")
	if *ref == "" && !*dryRun {
		flag.Usage()
		os.Exit(2)
	}
	t0 := time.Now()
	epoch := time.Unix(0, 0).UTC()

	caData, err := os.ReadFile(*ca)
	if err != nil {
		log.Fatal(err)
	}
	var tc toolchain
	switch *lang {
	case "go":
		tc, err = goToolchain(*goSrc, *exclude, caData)
	case "node":
		tc, err = nodeToolchain(*nodeBin, *npmDir, caData)
	default:
		err = fmt.Errorf("-lang %q: want go or node", *lang)
	}
	if err != nil {
		log.Fatal(err)
	}
	if *arch != "" {
		tc.arch = *arch
	}
	var entries int
	var bytes int64
	for _, l := range tc.layers {
		entries += len(l.Entries)
		for _, e := range l.Entries {
			bytes += int64(len(e.Data))
		}
	}
	log.Printf("read %s (linux/%s): %d entries, %.1f MB in %.1fs", tc.source, tc.arch, entries, float64(bytes)/1e6, time.Since(t0).Seconds())

	base, err := image.Scratch(tc.arch)
	if err != nil {
		log.Fatal(err)
	}
	t1 := time.Now()
	img, err := image.Assemble(base, image.Spec{
		Layers:     tc.layers,
		Env:        tc.env,
		WorkingDir: "/tmp",
		Labels: map[string]string{
			"org.opencontainers.image.title":       tc.title,
			"org.opencontainers.image.version":     tc.version,
			"org.opencontainers.image.description": tc.desc + "; built by kubecc's e2e/tools/toolimage",
		},
		Created: epoch,
		Arch:    tc.arch,
	})
	if err != nil {
		log.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	// Assemble keeps a non-root user of the base: Scratch's is not the one wanted here.
	cf = cf.DeepCopy()
	cf.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cf.Config.Entrypoint = nil
	cf.Config.Cmd = tc.cmd
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		log.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		log.Fatal(err)
	}
	size, err := image.Size(img)
	if err != nil {
		log.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		log.Fatal(err)
	}
	var sizes []string
	for _, l := range m.Layers {
		sizes = append(sizes, fmt.Sprintf("%.1f", float64(l.Size)/1e6))
	}
	log.Printf("assembled %s: layers %s MB, %.1f MB compressed, in %.1fs", d, strings.Join(sizes, " + "), float64(size)/1e6, time.Since(t1).Seconds())
	if *dryRun {
		fmt.Println(d)
		return
	}

	r, err := name.ParseReference(*ref, name.Insecure)
	if err != nil {
		log.Fatal(err)
	}
	t2 := time.Now()
	log.Printf("pushing %s", r)
	if err := remote.Write(r, img, remote.WithAuth(authn.Anonymous)); err != nil {
		log.Fatal(err)
	}
	log.Printf("pushed in %.1fs (total %.1fs)", time.Since(t2).Seconds(), time.Since(t0).Seconds())
	fmt.Printf("%s@%s\n", r.Context().Name(), d)
}

// system are the files every toolchain image has: root and the user the image runs as
// (named user), the CA bundle, and /tmp, where HOME and the caches live.
func system(user string, caData []byte) []image.Entry {
	return []image.Entry{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/tmp:/sbin/nologin\n", user, uid, uid, user))},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(fmt.Sprintf("root:x:0:\n%s:x:%d:\n", user, uid))},
		{Path: caPath, Mode: 0o644, Data: caData},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
	}
}

// tree returns dir's folders, files and links as root-owned entries below dest, leaving
// out what skip (if set) says. Links are kept as links when they stay inside dir (npm's
// node_modules/.bin); others would dangle in the image, so they are an error.
func tree(dir, dest string, skip func(rel string, d fs.DirEntry) bool) ([]image.Entry, error) {
	var out []image.Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := path.Join(dest, rel)
		switch {
		case d.IsDir():
			out = append(out, image.Entry{Path: target, Dir: true, Mode: 0o755})
		case d.Type().IsRegular():
			e, err := file(p, target)
			if err != nil {
				return err
			}
			out = append(out, e)
		case d.Type()&fs.ModeSymlink != 0:
			to, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if j := path.Join(path.Dir(rel), filepath.ToSlash(to)); path.IsAbs(to) || j == ".." || strings.HasPrefix(j, "../") {
				return fmt.Errorf("%s: links to %s, outside %s", p, to, dir)
			}
			out = append(out, image.Entry{Path: target, Link: to})
		default:
			return fmt.Errorf("%s: not a file, folder or link", p)
		}
		return nil
	})
	return out, err
}

// file is the file at p (links followed) as a root-owned entry at target, its mode
// normalised so that the host's umask does not change the digest.
func file(p, target string) (image.Entry, error) {
	info, err := os.Stat(p)
	if err != nil {
		return image.Entry{}, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return image.Entry{}, err
	}
	mode := int64(0o644)
	if info.Mode()&0o111 != 0 {
		mode = 0o755
	}
	return image.Entry{Path: target, Mode: mode, Data: b}, nil
}
