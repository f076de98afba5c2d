package build

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/fsutil"
)

// Unpacked is a package laid out the way the peer hands it to the build hook.
type Unpacked struct {
	Input
	dir string
}

// Close removes the temporary layout.
func (u *Unpacked) Close() error { return os.RemoveAll(u.dir) }

// Unpack lays out a package file, a Go module folder or a Node.js project folder as
// the peer would: the code under SrcDir and its metadata. label names the package when src is a folder
// (default: the folder's name).
func Unpack(src, label string, limits chaincode.Limits) (*Unpacked, error) {
	info, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubecc-src-")
	if err != nil {
		return nil, err
	}
	u := &Unpacked{dir: dir}
	u.SrcDir = filepath.Join(dir, "code")
	if err := os.Mkdir(u.SrcDir, 0o700); err != nil {
		_ = u.Close()
		return nil, err
	}
	if info.IsDir() {
		err = u.fromFolder(src, label, limits)
	} else {
		err = u.fromPackage(src, limits)
	}
	if err != nil {
		_ = u.Close()
		return nil, err
	}
	return u, nil
}

func (u *Unpacked) fromPackage(file string, limits chaincode.Limits) error {
	p, err := chaincode.ReadPackageFile(file, limits)
	if err != nil {
		return err
	}
	if err := p.ExtractCode(u.SrcDir, limits); err != nil {
		return fmt.Errorf("%s: %s: %w", file, chaincode.CodeFile, err)
	}
	u.Metadata, u.PackageID = p.Metadata, p.ID
	return nil
}

// fromFolder copies a Go module folder or a Node.js project folder to src/, as
// `peer lifecycle chaincode package` lays them out. Version control and links are left
// out (a link is refused, as in a package), and for Node.js node_modules too, which
// the peer CLI leaves out as well: the build installs dependencies itself.
func (u *Unpacked) fromFolder(folder, label string, limits chaincode.Limits) error {
	skip := map[string]bool{".git": true, ".hg": true}
	var lang string
	switch {
	case fsutil.IsFile(filepath.Join(folder, "go.mod")):
		lang = "golang"
	case fsutil.IsFile(filepath.Join(folder, "package.json")):
		lang, skip["node_modules"] = "node", true
	default:
		return fmt.Errorf("%s: not a Go module or Node.js project folder (no go.mod or package.json)", folder)
	}
	if label == "" {
		abs, _ := filepath.Abs(folder)
		label = filepath.Base(abs)
	}
	md := map[string]string{"type": lang, "path": ".", "label": label}
	raw, _ := json.Marshal(md)
	m, err := chaincode.ParseMetadata("metadata", raw)
	if err != nil {
		return err
	}
	if err := m.CheckLabel("--label"); err != nil {
		return err
	}
	u.Metadata = m
	dst := filepath.Join(u.SrcDir, "src")
	var total int64
	return filepath.WalkDir(folder, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(folder, path)
		if d.IsDir() && skip[d.Name()] {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: %s is not a regular file (links are refused)", folder, rel)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		total += fi.Size()
		if fi.Size() > limits.MaxFileSize || total > limits.MaxTotalSize {
			return fmt.Errorf("%s: %s is over the size limit", folder, rel)
		}
		if strings.HasPrefix(rel, "..") {
			return fmt.Errorf("%s: %s is outside the folder", folder, rel)
		}
		return fsutil.CopyTree(path, target)
	})
}
