package chaincode

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	name     string
	typ      byte
	body     string
	size     int64 // header size when it differs from len(body)
	linkname string
}

func tarGz(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		if typ != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: typ, Size: size, Mode: 0o644, Linkname: e.linkname}); err != nil {
			t.Fatal(err)
		}
		if size > 0 && e.size == 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A header claiming a huge size with no body makes Close fail; that is the point.
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

func writePackage(t *testing.T, code []byte, md string) string {
	t.Helper()
	outer := tarGz(t, entry{name: "metadata.json", body: md}, entry{name: "code.tar.gz", body: string(code)})
	path := filepath.Join(t.TempDir(), "pkg.tgz")
	if err := os.WriteFile(path, outer, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadPackageFileComputesThePeersPackageID(t *testing.T) {
	code := tarGz(t, entry{name: "src/go.mod", body: "module x\n"}, entry{name: "src/main.go", body: "package main\n"})
	path := writePackage(t, code, `{"type":"golang","path":"x","label":"mycc_1.0","extra":"kept"}`)
	p, err := ReadPackageFile(path, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	sum := sha256.Sum256(raw)
	if want := "mycc_1.0:" + hex.EncodeToString(sum[:]); p.ID != want {
		t.Fatalf("package ID %s, want %s", p.ID, want)
	}
	if !strings.Contains(string(p.Metadata.Raw), `"extra":"kept"`) {
		t.Fatalf("metadata bytes not kept as they are: %s", p.Metadata.Raw)
	}
	dir := t.TempDir()
	if err := p.ExtractCode(dir, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "src/main.go")); err != nil || string(b) != "package main\n" {
		t.Fatalf("extracted main.go: %q %v", b, err)
	}
}

func TestHostileCodeArchivesAreRefused(t *testing.T) {
	limits := Limits{MaxFileSize: 1 << 10, MaxTotalSize: 4 << 10, MaxEntries: 10, MaxDepth: 4}
	cases := map[string]struct {
		entries []entry
		want    string
	}{
		"traversal":          {[]entry{{name: "../evil", body: "x"}}, "traversal"},
		"nested traversal":   {[]entry{{name: "src/../../evil", body: "x"}}, "traversal"},
		"absolute path":      {[]entry{{name: "/etc/passwd", body: "x"}}, "unsafe path"},
		"symlink":            {[]entry{{name: "src/link", typ: tar.TypeSymlink, linkname: "/etc/passwd"}}, "link"},
		"hard link":          {[]entry{{name: "src/hard", typ: tar.TypeLink, linkname: "/etc/shadow"}}, "link"},
		"char device":        {[]entry{{name: "src/dev", typ: tar.TypeChar}}, "only files and folders"},
		"fifo":               {[]entry{{name: "src/fifo", typ: tar.TypeFifo}}, "only files and folders"},
		"huge file":          {[]entry{{name: "src/big", size: 1 << 40}}, "over the"},
		"too much in total":  {[]entry{{name: "a", body: strings.Repeat("x", 1000)}, {name: "b", body: strings.Repeat("x", 1000)}, {name: "c", body: strings.Repeat("x", 1000)}, {name: "d", body: strings.Repeat("x", 1000)}, {name: "e", body: strings.Repeat("x", 1000)}}, "in total"},
		"duplicate entry":    {[]entry{{name: "src/a", body: "1"}, {name: "src/a", body: "2"}}, "twice"},
		"too many entries":   {[]entry{{name: "1"}, {name: "2"}, {name: "3"}, {name: "4"}, {name: "5"}, {name: "6"}, {name: "7"}, {name: "8"}, {name: "9"}, {name: "10"}, {name: "11"}}, "entries"},
		"backslash traverse": {[]entry{{name: `..\evil`, body: "x"}}, "unsafe path"},
		"deep tree":          {[]entry{{name: "a/b/c/d/e", body: "x"}}, "folders deep"},
		"newline in name":    {[]entry{{name: "src/a\nkubecc run: forged", body: "x"}}, "control character"},
		"long name":          {[]entry{{name: strings.Repeat("n", 1100), body: "x"}}, "over 1024 bytes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			err := ExtractTarGz(bytes.NewReader(tarGz(t, tc.entries...)), filepath.Join(dir, "out"), limits)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
				t.Fatal("a file escaped the extraction folder")
			}
		})
	}
}

func TestReadPackageFileErrorsNameTheFileAndField(t *testing.T) {
	code := tarGz(t, entry{name: "image.json", body: `{}`})
	for md, want := range map[string]string{
		`{"type":"golang","label":"bad label!"}`: `field "label"`,
		`{"label":"x"}`:                          `field "type"`,
		`not json`:                               "not valid JSON",
	} {
		path := writePackage(t, code, md)
		_, err := ReadPackageFile(path, DefaultLimits())
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("metadata %s: error %v, want one naming %s and %q", md, err, path, want)
		}
	}
}

func TestDetect(t *testing.T) {
	mk := func(md string, files map[string]string) (string, string) {
		src, mdDir := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(mdDir, "metadata.json"), []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
		for name, body := range files {
			p := filepath.Join(src, name)
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return src, mdDir
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	cases := []struct {
		name  string
		md    string
		files map[string]string
		kind  Kind
		err   string
	}{
		{"go", `{"type":"golang","path":"x","label":"cc"}`, map[string]string{"src/go.mod": "module x"}, KindGo, ""},
		{"go upper case", `{"type":"GOLANG","path":"x","label":"cc"}`, map[string]string{"src/go.mod": "module x"}, KindGo, ""},
		{"image", `{"type":"kubecc","label":"cc"}`, map[string]string{"image.json": `{"name":"r/x","digest":"` + digest + `"}`}, KindImage, ""},
		{"k8s image", `{"type":"k8s","label":"cc"}`, map[string]string{"image.json": `{"name":"r/x","digest":"` + digest + `"}`}, KindImage, ""},
		{"node", `{"type":"node","path":"/home/me/cc","label":"cc"}`, map[string]string{"src/package.json": "{}", "src/index.js": ""}, KindNode, ""},
		{"node without package.json", `{"type":"node","label":"cc"}`, map[string]string{"src/index.js": ""}, KindNode, "src/package.json"},
		{"node bad label", `{"type":"node","label":"c c"}`, map[string]string{"src/package.json": "{}"}, KindNode, `field "label"`},
		{"java is not ours", `{"type":"java","label":"cc"}`, nil, KindNone, "not a package kubecc builds"},
		{"image without image.json", `{"type":"kubecc","label":"cc"}`, nil, KindImage, "image.json"},
		{"image with bad digest", `{"type":"kubecc","label":"cc"}`, map[string]string{"image.json": `{"name":"r/x","digest":"sha256:zz"}`}, KindImage, `field "digest"`},
		{"go without src", `{"type":"golang","path":"x","label":"cc"}`, nil, KindGo, "src/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, mdDir := mk(tc.md, tc.files)
			kind, _, err := Detect(src, mdDir)
			if kind != tc.kind {
				t.Errorf("kind %v, want %v", kind, tc.kind)
			}
			if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
}

func TestContentHashIgnoresTimesButNotContent(t *testing.T) {
	md, _ := ParseMetadata("m", []byte(`{"type":"golang","label":"cc"}`))
	mk := func(body string) string {
		dir := t.TempDir()
		_ = os.MkdirAll(filepath.Join(dir, "src"), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "src/main.go"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	a, b, c := mk("package main"), mk("package main"), mk("package main // changed")
	ha, _ := ContentHash(md, a, DefaultLimits(), "goarch=amd64")
	hb, _ := ContentHash(md, b, DefaultLimits(), "goarch=amd64")
	hc, _ := ContentHash(md, c, DefaultLimits(), "goarch=amd64")
	hd, _ := ContentHash(md, a, DefaultLimits(), "goarch=arm64")
	if ha != hb {
		t.Errorf("same tree, different hashes: %s %s", ha, hb)
	}
	if ha == hc || ha == hd {
		t.Errorf("content or config change did not change the hash")
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(a, "src/link")); err != nil {
		t.Fatal(err)
	}
	if _, err := ContentHash(md, a, DefaultLimits()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a symlink in the tree: error %v", err)
	}
}

func TestPackageIDFromBuildDir(t *testing.T) {
	hash := strings.Repeat("0123456789abcdef", 4)
	cases := map[string]string{
		"/tmp/fabric-mycc-" + hash + "1234567/src":     "mycc:" + hash,
		"/tmp/fabric-my-cc_1.0-" + hash + "98765/src/": "my-cc_1.0:" + hash,
		"/tmp/other/src":                      "",
		"/tmp/fabric-mycc-" + hash + "x1/src": "",
	}
	for dir, want := range cases {
		got, ok := PackageIDFromBuildDir(dir)
		if got != want || ok != (want != "") {
			t.Errorf("%s: got %q %v, want %q", dir, got, ok, want)
		}
	}
}

func TestReadRunConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "chaincode.json"), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"chaincode_id":"cc:abc","peer_address":"p:7052","mspid":"Org1MSP","client_cert":"","client_key":"","root_cert":""}`)
	rc, err := ReadRunConfig(dir)
	if err != nil || rc.TLS() || rc.Label() != "cc" || rc.Hash() != "abc" {
		t.Fatalf("TLS-off config: %+v %v", rc, err)
	}
	write(`{"chaincode_id":"cc:abc","peer_address":"p:7052","mspid":"Org1MSP","client_cert":"C","client_key":"","root_cert":"R"}`)
	if _, err := ReadRunConfig(dir); err == nil || !strings.Contains(err.Error(), "client_key") {
		t.Fatalf("half TLS: %v", err)
	}
	write(`{"chaincode_id":"cc:abc","mspid":"Org1MSP"}`)
	if _, err := ReadRunConfig(dir); err == nil || !strings.Contains(err.Error(), `"peer_address"`) || !strings.Contains(err.Error(), "chaincode.json") {
		t.Fatalf("missing field: %v", err)
	}
}

func TestBuildPackageIsDeterministic(t *testing.T) {
	md := []byte(`{"type":"kubecc","label":"cc"}`)
	a, err := BuildPackage(md, []File{{Name: "image.json", Data: []byte(`{"name":"x"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := BuildPackage(md, []File{{Name: "image.json", Data: []byte(`{"name":"x"}`)}})
	if !bytes.Equal(a, b) {
		t.Fatal("the same package built twice differs")
	}
	path := filepath.Join(t.TempDir(), "p.tgz")
	_ = os.WriteFile(path, a, 0o644)
	p, err := ReadPackageFile(path, DefaultLimits())
	if err != nil || p.ID != PackageID("cc", a) {
		t.Fatalf("round trip: %+v %v", p, err)
	}
}

// Found by FuzzParseOptions (testdata/fuzz/FuzzParseOptions/crash-*): YAML reports a
// duplicate key over two lines, and hook errors are one line naming the file.
func TestParseOptionsErrorsAreOneLine(t *testing.T) {
	for _, in := range []string{"0:\n0:", "launch: job\nlaunch: pod\n", strings.Repeat("k: v\n", 4)} {
		_, err := ParseOptions("kubecc.yaml", []byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), "kubecc.yaml: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %q, want one line naming kubecc.yaml (pkg/strictyaml must join YAML's multi-line errors)", in, err)
		}
	}
}
