// Command toolimage packs the Go toolchain of this machine (a static GOROOT such as
// /usr/local/go) into a Go toolchain image and pushes it to a registry over plain HTTP
// (the e2e harness's local registry), without a Docker daemon. Build Jobs run in it:
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
	"os/exec"
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
	goroot = "/usr/local/go" // GOROOT inside the image
	uid    = 10001
)

func main() {
	src := flag.String("goroot", "", "the toolchain to pack, a static GOROOT (default: `go env GOROOT`)")
	ca := flag.String("ca", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to put at /etc/ssl/certs/ca-certificates.crt")
	ref := flag.String("ref", "", "image reference to push to over plain HTTP; empty with -dry-run")
	arch := flag.String("arch", "", "image architecture (default: GOARCH of the toolchain's own go command, read from GOROOT/pkg/tool)")
	exclude := flag.String("exclude", "test,api", "comma list of GOROOT top-level folders to leave out (testdata folders are always left out)")
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

	if *src == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			log.Fatalf("go env GOROOT: %v (set -goroot)", err)
		}
		*src = strings.TrimSpace(string(out))
	}
	version, err := goVersion(*src)
	if err != nil {
		log.Fatal(err)
	}
	if *arch == "" {
		if *arch, err = toolArch(*src); err != nil {
			log.Fatal(err)
		}
	}
	skip := map[string]bool{}
	for _, s := range strings.Split(*exclude, ",") {
		if s = strings.Trim(strings.TrimSpace(s), "/"); s != "" {
			skip[s] = true
		}
	}
	rootEntries, bytes, err := tree(*src, goroot, skip)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("read %s (%s, linux/%s): %d entries, %.1f MB in %.1fs", *src, version, *arch, len(rootEntries), float64(bytes)/1e6, time.Since(t0).Seconds())

	caData, err := os.ReadFile(*ca)
	if err != nil {
		log.Fatal(err)
	}
	system := []image.Entry{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nbuild:x:%d:%d:build:/tmp:/sbin/nologin\n", uid, uid))},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(fmt.Sprintf("root:x:0:\nbuild:x:%d:\n", uid))},
		{Path: "/etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Data: caData},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
	}

	base, err := image.Scratch(*arch)
	if err != nil {
		log.Fatal(err)
	}
	t1 := time.Now()
	img, err := image.Assemble(base, image.Spec{
		Layers: []image.Contents{
			{Entries: system, CreatedBy: "toolimage: users, CA bundle, /tmp"},
			{Entries: rootEntries, CreatedBy: "toolimage: Go toolchain " + version + " in " + goroot},
		},
		Env: []string{
			"PATH=" + goroot + "/bin:/usr/local/bin:/usr/bin:/bin",
			"HOME=/tmp",
			"GOPATH=/tmp/go",
			"GOMODCACHE=/tmp/go/pkg/mod",
			"GOCACHE=/tmp/go-build",
			"GOTOOLCHAIN=local",
			"CGO_ENABLED=0",
		},
		WorkingDir: "/tmp",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "golang",
			"org.opencontainers.image.version":     strings.TrimPrefix(version, "go"),
			"org.opencontainers.image.description": "Go toolchain " + version + " (static GOROOT, CGO_ENABLED=0, user 10001, no shell); built by kubecc's e2e/tools/toolimage",
		},
		Created: epoch,
		Arch:    *arch,
	})
	if err != nil {
		log.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cf.Config.Entrypoint = nil
	cf.Config.Cmd = []string{"go", "version"}
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

// tree returns GOROOT's folders and files as root-owned entries below dest, leaving out
// the top-level folders in skip and every testdata folder. Modes are normalised so that
// the host's umask does not change the digest. It also returns the bytes of file data.
func tree(dir, dest string, skip map[string]bool) ([]image.Entry, int64, error) {
	var out []image.Entry
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && (skip[rel] || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		target := path.Join(dest, rel)
		switch {
		case d.IsDir():
			out = append(out, image.Entry{Path: target, Dir: true, Mode: 0o755})
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			out = append(out, image.Entry{Path: target, Mode: mode, Data: b})
			total += int64(len(b))
		default:
			return fmt.Errorf("%s: not a file or folder (links are not supported)", p)
		}
		return nil
	})
	return out, total, err
}

// goVersion reads the toolchain's version (e.g. go1.26.8) from the first line of GOROOT/VERSION.
func goVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		return "", fmt.Errorf("not a Go release GOROOT: %w", err)
	}
	v, _, _ := strings.Cut(string(b), "\n")
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "go") {
		return "", fmt.Errorf("%s/VERSION: unexpected first line %q", root, v)
	}
	return v, nil
}

// toolArch is the architecture of the toolchain's host tools: GOROOT/pkg/tool/linux_ARCH.
func toolArch(root string) (string, error) {
	m, err := filepath.Glob(filepath.Join(root, "pkg", "tool", "linux_*"))
	if err != nil || len(m) != 1 {
		return "", fmt.Errorf("%s/pkg/tool: want exactly one linux_* folder, found %v", root, m)
	}
	return strings.TrimPrefix(filepath.Base(m[0]), "linux_"), nil
}
