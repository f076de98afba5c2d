package image

import (
	"archive/tar"
	"io"
	"testing"
	"time"
)

func TestLayerSymlink(t *testing.T) {
	entries := []Entry{
		{Path: "/app/node_modules/.bin/tool", Link: "../pkg/cli.js"},
		{Path: "/app/node_modules/pkg/cli.js", Mode: 0o755, Data: []byte("#!/usr/bin/env node\n")},
	}
	layer, err := Layer(entries, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	got := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[hdr.Name] = hdr
	}
	link := got["app/node_modules/.bin/tool"]
	if link == nil || link.Typeflag != tar.TypeSymlink || link.Linkname != "../pkg/cli.js" || link.Size != 0 || link.Mode != 0o777 || !link.ModTime.Equal(time.Unix(0, 0)) {
		t.Fatalf("link entry %+v", link)
	}
	if f := got["app/node_modules/pkg/cli.js"]; f == nil || f.Typeflag != tar.TypeReg || f.Mode != 0o755 || f.Size != 20 {
		t.Fatalf("file entry %+v", f)
	}
	if d := got["app/node_modules/.bin/"]; d == nil || d.Typeflag != tar.TypeDir {
		t.Fatalf("parent of the link %+v", d)
	}
	// The same entries give the same digest; another target does not.
	again, _ := Layer(entries, time.Unix(0, 0))
	entries[0].Link = "../pkg/other.js"
	other, _ := Layer(entries, time.Unix(0, 0))
	d1, _ := layer.Digest()
	d2, _ := again.Digest()
	d3, _ := other.Digest()
	if d1 != d2 || d1 == d3 {
		t.Fatalf("digests %s %s %s", d1, d2, d3)
	}
}
