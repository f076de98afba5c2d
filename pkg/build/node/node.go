// Package node is the Node.js language of the build pipeline: it builds the
// JavaScript or TypeScript chaincode of a peer package (`peer lifecycle chaincode
// package --lang node`: the project under src/, with src/package.json) into an
// image on an official Node.js base, the way Fabric's own Node platform does
// (fabric-nodeenv's build.sh): copy src/, then npm.
//
//   - With a lockfile (package-lock.json or npm-shrinkwrap.json) `npm ci`, else `npm
//     install`; without a "build" script production dependencies only (--omit=dev);
//     with one (TypeScript: "build": "tsc") all dependencies, `npm run build`, then
//     `npm prune --omit=dev`, so that no compiler ships in the image.
//   - npm runs in the copy, in an environment made of the operator's npm, proxy and
//     certificate settings only (see Env), never the peer's other variables. The
//     package's own .npmrc is honoured; the operator's variables win over it, as npm
//     ranks environment over project config.
//   - npm runs the package's install scripts (Fabric's build does too) and its
//     build script: unlike a Go build, a Node.js build runs package code. A local
//     build runs it on the build host, with the hook's rights; a cluster build runs
//     it in a hardened build Job. Building Node.js packages locally is therefore a
//     choice for the operator to make knowingly (buildIn).
//   - Native addons (compiled *.node files) are refused, naming the module: npm
//     builds or downloads them for the build host, which need not match the image's
//     architecture and C library. Pure JavaScript runs on any base.
//
// The image has two layers on the base: node_modules, then the application (every
// other file), both at AppDir. Layers are deterministic (sorted, fixed times, root
// owned, exec bits kept), so a change to the contract alone gives the same
// node_modules layer digest, which the registry and the nodes already hold: only
// the small application layer is pushed and pulled again. node_modules goes first,
// directly on the base, so that a node's containerd also keeps its unpacked copy
// (a layer's snapshot is keyed by the layers under it).
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/fsutil"
	"github.com/kubecc/kubecc/pkg/image"
)

// Type is the metadata.json type of Node.js packages.
const Type = "node"

// AppDir is where the application lives in the image, and the working directory
// (fabric-shim finds package.json in the working directory).
const AppDir = "/usr/src/app"

// layout names the image layout of this package: it enters the content hash, so a
// change to how kubecc lays out or starts Node.js images makes new images.
const layout = "node-layout=v1"

// Language builds Node.js chaincode.
type Language struct {
	cfg *config.Config
	reg *image.Registry
	env []string
	log io.Writer
}

// New returns the Node.js language for cfg. env is the hook's environment, which
// npm's settings are taken from; log receives npm's output.
func New(cfg *config.Config, reg *image.Registry, env []string, log io.Writer) *Language {
	return &Language{cfg: cfg, reg: reg, env: env, log: log}
}

// Type is "node".
func (*Language) Type() string { return Type }

// Toolchain is the npm command.
func (*Language) Toolchain() string { return "npm" }

// RunsPackageCode is true: npm runs the install scripts of the package and of its
// dependencies, and its build script.
func (*Language) RunsPackageCode() bool { return true }

// SourceDir is src/, where package.json (and kubecc.yaml) live.
func (*Language) SourceDir(srcDir string, _ *chaincode.Metadata) string {
	return filepath.Join(srcDir, "src")
}

// HashKeys: the image platform, and kubecc's layout of Node.js images.
func (l *Language) HashKeys() []string { return []string{"goarch=" + l.cfg.GOARCH, layout} }

// Info: the start-up line takes the peer address from run's -peer.address flag
// (rewritten into the --peer.address fabric-shim wants), or from CORE_PEER_ADDRESS.
func (*Language) Info() chaincode.BuildInfo {
	return chaincode.BuildInfo{Type: Type, PeerAddressArg: true}
}

// Base is config's nodeBaseImage for the configured architecture; its digest names it.
func (l *Language) Base(ctx context.Context) (v1.Image, string, error) {
	ref := l.cfg.NodeBaseImage
	if ref == "" {
		ref = config.DefaultNodeBaseImage
	}
	img, digest, err := l.reg.Pinned(ctx, ref, v1.Platform{OS: "linux", Architecture: l.cfg.GOARCH})
	if err != nil {
		return nil, "", fmt.Errorf("config key nodeBaseImage: %w", err)
	}
	return img, digest, nil
}

// Compile copies src/ into work, installs (and builds) with npm, and returns the
// node_modules and application layers with the start-up line.
func (l *Language) Compile(ctx context.Context, srcDir string, _ *chaincode.Metadata, work string) (image.Spec, error) {
	src := filepath.Join(srcDir, "src")
	pkg, err := ReadPackageJSON(src)
	if err != nil {
		return image.Spec{}, err
	}
	app := filepath.Join(work, "app")
	if err := copySource(src, app, l.log); err != nil {
		return image.Spec{}, err
	}
	if err := Install(ctx, InstallOptions{Dir: app, Package: pkg, Env: l.env, Log: l.log}); err != nil {
		return image.Spec{}, err
	}
	mods, rest, err := Collect(app, AppDir)
	if err != nil {
		return image.Spec{}, err
	}
	entrypoint, mode := Entrypoint(pkg)
	logf(l.log, "start-up: %s", mode)
	return image.Spec{
		Layers: []image.Contents{
			{Entries: mods, CreatedBy: "kubecc: node_modules (" + pkg.installSummary() + ")"},
			{Entries: rest, CreatedBy: "kubecc: Node.js chaincode"},
		},
		Entrypoint: entrypoint,
		// For the npm start fallback: npm writes its cache and logs under /tmp (the
		// root file system is read-only) and never asks the registry for updates.
		Env:        []string{"NPM_CONFIG_CACHE=/tmp/.npm", "NPM_CONFIG_UPDATE_NOTIFIER=false"},
		WorkingDir: AppDir,
		User:       image.User,
		Arch:       l.cfg.GOARCH,
	}, nil
}

// PackageJSON is what kubecc reads of src/package.json.
type PackageJSON struct {
	Scripts map[string]string `json:"scripts"`
	// Lockfile is package-lock.json or npm-shrinkwrap.json when the project has one.
	Lockfile string `json:"-"`
}

// ReadPackageJSON reads dir/package.json (dir is the package's src/) and checks
// that it has a start script. Errors name src/package.json and the field.
func ReadPackageJSON(dir string) (*PackageJSON, error) {
	const name = "src/package.json"
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: missing (a Node.js package holds its project under src/)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var pkg PackageJSON
	if err := json.Unmarshal(data, &pkg); err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %w", name, err)
	}
	if pkg.Scripts["start"] == "" {
		return nil, fmt.Errorf("%s: field \"scripts.start\" is missing (Fabric starts Node.js chaincode with npm start, e.g. \"start\": \"fabric-chaincode-node start\")", name)
	}
	for _, lock := range []string{"npm-shrinkwrap.json", "package-lock.json"} {
		if fsutil.IsFile(filepath.Join(dir, lock)) {
			pkg.Lockfile = lock
			break
		}
	}
	return &pkg, nil
}

// HasBuild reports whether the project has a "build" script (TypeScript's tsc).
func (p *PackageJSON) HasBuild() bool { return p.Scripts["build"] != "" }

func (p *PackageJSON) installSummary() string {
	cmd := "npm install"
	if p.Lockfile != "" {
		cmd = "npm ci"
	}
	if p.HasBuild() {
		return cmd + ", npm run build, npm prune --omit=dev"
	}
	return cmd + " --omit=dev"
}

// logf writes one progress line to the hook's log, if any.
func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		_, _ = fmt.Fprintf(w, "kubecc: "+format+"\n", args...)
	}
}
