package release

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func TestCouchDBIndexesOnly(t *testing.T) {
	bld, rel := t.TempDir(), t.TempDir()
	files := map[string]string{
		"META-INF/statedb/couchdb/indexes/a.json":                  `{"index":{}}`,
		"META-INF/statedb/couchdb/collections/priv/indexes/b.json": `{"index":{}}`,
		"META-INF/statedb/couchdb/indexes/notes.txt":               "not an index",
		"META-INF/other/c.json":                                    "{}",
		"image.json":                                               "{}",
	}
	for name, body := range files {
		p := filepath.Join(bld, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, err := CouchDBIndexes(bld, rel)
	if err != nil || n != 2 {
		t.Fatalf("copied %d, %v", n, err)
	}
	var got []string
	_ = filepath.Walk(rel, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			r, _ := filepath.Rel(rel, p)
			got = append(got, r)
		}
		return nil
	})
	sort.Strings(got)
	want := []string{"statedb/couchdb/collections/priv/indexes/b.json", "statedb/couchdb/indexes/a.json"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("release dir holds %v, want %v", got, want)
	}
}

func TestNoMetaInf(t *testing.T) {
	n, err := CouchDBIndexes(t.TempDir(), t.TempDir())
	if err != nil || n != 0 {
		t.Fatalf("%d %v", n, err)
	}
}
