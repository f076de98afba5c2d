// Package release hands a chaincode's CouchDB indexes to the peer.
package release

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubecc/kubecc/pkg/fsutil"
)

// indexRoot is where the peer looks for CouchDB indexes, in META-INF and in the release dir.
const indexRoot = "statedb/couchdb"

// CouchDBIndexes copies META-INF/statedb/couchdb/indexes/*.json and
// META-INF/statedb/couchdb/collections/<name>/indexes/*.json from the build output to
// statedb/couchdb/... in the release dir, and nothing else.
func CouchDBIndexes(bldDir, releaseDir string) (int, error) {
	src := filepath.Join(bldDir, "META-INF", indexRoot)
	var files []string
	add := func(pattern string) error {
		m, err := filepath.Glob(filepath.Join(src, pattern))
		if err != nil {
			return err
		}
		files = append(files, m...)
		return nil
	}
	if err := add("indexes/*.json"); err != nil {
		return 0, err
	}
	if err := add("collections/*/indexes/*.json"); err != nil {
		return 0, err
	}
	n := 0
	for _, f := range files {
		info, err := os.Lstat(f)
		if err != nil {
			return n, err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		rel, err := filepath.Rel(src, f)
		if err != nil || strings.HasPrefix(rel, "..") {
			return n, fmt.Errorf("index %s is outside %s", f, src)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return n, fmt.Errorf("read index %s: %w", f, err)
		}
		dst := filepath.Join(releaseDir, indexRoot, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return n, fmt.Errorf("release %s: %w", rel, err)
		}
		if err := fsutil.WriteFileAtomic(dst, data, 0o644); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
