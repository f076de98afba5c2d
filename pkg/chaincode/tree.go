package chaincode

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Limits bound what kubecc accepts from a package. A chaincode is source code: a
// file or a tree larger than this is an attack or a mistake.
type Limits struct {
	MaxFileSize  int64
	MaxTotalSize int64
	MaxEntries   int
	// MaxDepth bounds how many folders deep a path goes.
	MaxDepth int
}

// DefaultLimits are generous for vendored Go chaincode and node_modules, and small
// for a disk bomb.
func DefaultLimits() Limits {
	return Limits{MaxFileSize: 64 << 20, MaxTotalSize: 512 << 20, MaxEntries: 100000, MaxDepth: 64}
}

// HashTree checks every entry below root (only regular files and directories, within
// the limits) and returns a digest of the tree: sorted paths, the executable bit and
// file contents. Timestamps and owners do not count, so two peers that unpack the
// same package get the same hash.
func HashTree(root string, limits Limits, h hash.Hash) error {
	paths, err := checkTree(root, limits)
	if err != nil {
		return err
	}
	for _, rel := range paths {
		if err := hashEntry(h, root, rel); err != nil {
			return err
		}
	}
	return nil
}

// checkTree checks every entry below root and returns their paths, sorted.
func checkTree(root string, limits Limits) ([]string, error) {
	var paths []string
	var total int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return fmt.Errorf("%s: %s is not a regular file (links, devices and pipes are refused)", root, rel)
		}
		if len(paths) >= limits.MaxEntries {
			return fmt.Errorf("%s: more than %d entries", root, limits.MaxEntries)
		}
		if err := checkName(filepath.ToSlash(rel), limits); err != nil {
			return fmt.Errorf("%s: %w", root, err)
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Size() > limits.MaxFileSize {
				return fmt.Errorf("%s: %s is %d bytes, over the %d-byte limit", root, rel, info.Size(), limits.MaxFileSize)
			}
			total += info.Size()
			if total > limits.MaxTotalSize {
				return fmt.Errorf("%s: over the %d-byte limit in total", root, limits.MaxTotalSize)
			}
		}
		paths = append(paths, rel)
		return nil
	})
	sort.Strings(paths)
	return paths, err
}

// hashEntry writes one entry: its path, its kind and, for a file, size and content.
func hashEntry(h hash.Hash, root, rel string) error {
	path := filepath.Join(root, rel)
	info, err := os.Lstat(path)
	if err != nil {
		return err
	}
	kind := byte('f')
	switch {
	case info.IsDir():
		kind = 'd'
	case info.Mode()&0o111 != 0:
		kind = 'x'
	}
	writeField(h, []byte(filepath.ToSlash(rel)))
	h.Write([]byte{kind})
	if kind == 'd' {
		return nil
	}
	var size [8]byte
	binary.BigEndian.PutUint64(size[:], uint64(info.Size()))
	h.Write(size[:])
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// writeField writes a length-prefixed field so that no two inputs hash alike.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// ContentHash is the hex sha256 over metadata.json, the unpacked source tree and
// extra build inputs (config that changes the image). It names the image in the
// registry: the same package built with the same settings has the same hash.
func ContentHash(md *Metadata, srcDir string, limits Limits, extra ...string) (string, error) {
	h := sha256.New()
	writeField(h, []byte("kubecc content v1"))
	writeField(h, md.Raw)
	for _, e := range extra {
		writeField(h, []byte(e))
	}
	if err := HashTree(srcDir, limits, h); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PackageIDFromBuildDir recovers the package ID from the scratch folder the peer
// unpacks a package into ($TMPDIR/fabric-<label>-<hash><random digits>/src), since
// the build hook is not told it. ok is false when the folder is not named that way.
func PackageIDFromBuildDir(srcDir string) (id string, ok bool) {
	base := filepath.Base(filepath.Dir(filepath.Clean(srcDir)))
	rest, found := strings.CutPrefix(base, "fabric-")
	if !found {
		return "", false
	}
	i := strings.LastIndex(rest, "-")
	if i <= 0 || len(rest)-i-1 < 64 {
		return "", false
	}
	label, tail := rest[:i], rest[i+1:]
	hash, random := tail[:64], tail[64:]
	if _, err := hex.DecodeString(hash); err != nil || strings.ToLower(hash) != hash {
		return "", false
	}
	for _, r := range random {
		if r < '0' || r > '9' {
			return "", false
		}
	}
	if !LabelPattern.MatchString(label) {
		return "", false
	}
	return label + ":" + hash, true
}
