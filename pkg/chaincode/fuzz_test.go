package chaincode

// Fuzz targets for everything that parses package input. Each asserts what its
// validator promises, not only that it returns: run them with e2e/fuzz.sh (or
// go test -run '^$' -fuzz '^FuzzX$' -fuzztime 15s ./pkg/chaincode/). The seeds are
// the f.Add calls below and the files under testdata/fuzz/<target>/; a crash the
// fuzzer finds is saved there too and becomes part of the plain go test run.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// fuzzLimits keep each run small: no disk bombs while fuzzing.
var fuzzLimits = Limits{MaxFileSize: 4 << 10, MaxTotalSize: 16 << 10, MaxEntries: 32, MaxDepth: 8}

func seedTarGz(f *testing.F, entries ...entry) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := int64(len(e.body))
		if typ != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: typ, Size: size, Mode: 0o644, Linkname: e.linkname}); err != nil {
			f.Fatal(err)
		}
		if size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				f.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

func codeSeeds(f *testing.F) [][]byte {
	var det bytes.Buffer
	if err := WriteTarGz(&det, []File{{Name: "src/go.mod", Data: []byte("module x\n")}, {Name: "src/main.go", Data: []byte("package main\n"), Mode: 0o755}}); err != nil {
		f.Fatal(err)
	}
	return [][]byte{
		det.Bytes(),
		seedTarGz(f, entry{name: "src/", typ: tar.TypeDir}, entry{name: "src/a.go", body: "package a"}, entry{name: "META-INF/statedb/couchdb/indexes/i.json", body: "{}"}),
		seedTarGz(f, entry{name: "src/../../evil", body: "x"}),
		seedTarGz(f, entry{name: "/abs", body: "x"}),
		seedTarGz(f, entry{name: "src/link", typ: tar.TypeSymlink, linkname: "/etc/passwd"}),
		seedTarGz(f, entry{name: "a", body: "1"}, entry{name: "./a", body: "2"}),
		seedTarGz(f, entry{name: "a", body: "1"}, entry{name: "a/b", body: "2"}),
		seedTarGz(f, entry{name: `..\x`, body: "x"}),
		{},
		[]byte("not gzip"),
	}
}

// checkExtracted asserts what ExtractTarGz promises whatever the input: nothing
// outside out (base holds out alone), only plain files and folders inside, every
// file within the limits.
func checkExtracted(t *testing.T, base, out string, limits Limits) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != filepath.Base(out) {
		t.Fatalf("extraction wrote beside its folder: %v", ents)
	}
	files := map[string][]byte{}
	var total int64
	err = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.IsDir() && !info.Mode().IsRegular() {
			t.Fatalf("%s is %v: only files and folders may be extracted", p, info.Mode())
		}
		if info.Mode().Perm()&^0o755 != 0 || info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			t.Fatalf("%s has mode %v", p, info.Mode())
		}
		if info.Mode().IsRegular() {
			if info.Size() > limits.MaxFileSize {
				t.Fatalf("%s is %d bytes, over the limit", p, info.Size())
			}
			total += info.Size()
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(out, p)
			files[filepath.ToSlash(rel)] = data
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > limits.MaxTotalSize {
		t.Fatalf("%d bytes extracted, over the total limit", total)
	}
	return files
}

// readTarGz lists the regular files of an archive with the standard library alone,
// independently of walkTarGz.
func readTarGz(t *testing.T, data []byte) (map[string][]byte, []*tar.Header) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("accepted archive is not gzip: %v", err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var hdrs []*tar.Header
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, hdrs
		}
		if err != nil {
			t.Fatalf("accepted archive does not read: %v", err)
		}
		hdrs = append(hdrs, hdr)
		if hdr.Typeflag == tar.TypeReg {
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("accepted archive: %s: %v", hdr.Name, err)
			}
			files[path.Clean(hdr.Name)] = body
		}
	}
}

func checkEntryNames(t *testing.T, hdrs []*tar.Header, limits Limits) {
	t.Helper()
	if len(hdrs) > limits.MaxEntries {
		t.Fatalf("accepted %d entries, over the limit", len(hdrs))
	}
	for _, h := range hdrs {
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
			t.Fatalf("accepted entry %q of type %q", h.Name, h.Typeflag)
		}
		if h.Name == "" || path.IsAbs(h.Name) || strings.ContainsAny(h.Name, "\\\x00") {
			t.Fatalf("accepted entry name %q", h.Name)
		}
		for _, part := range strings.Split(h.Name, "/") {
			if part == ".." {
				t.Fatalf("accepted entry name %q with ..", h.Name)
			}
		}
		if c := path.Clean(h.Name); c == ".." || strings.HasPrefix(c, "../") {
			t.Fatalf("accepted entry name %q leaves the folder", h.Name)
		}
	}
}

func FuzzExtractTarGz(f *testing.F) {
	for _, s := range codeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		out := filepath.Join(base, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		err := ExtractTarGz(bytes.NewReader(data), out, fuzzLimits)
		got := checkExtracted(t, base, out, fuzzLimits)
		if err != nil {
			return
		}
		want, hdrs := readTarGz(t, data)
		checkEntryNames(t, hdrs, fuzzLimits)
		// Round trip: every file of the archive is on disk, byte for byte, where its
		// cleaned name says, and nothing else is.
		if len(got) != len(want) {
			t.Fatalf("extracted %d files, the archive has %d", len(got), len(want))
		}
		for name, body := range want {
			if !bytes.Equal(got[name], body) {
				t.Fatalf("%s: extracted %q, archive has %q", name, got[name], body)
			}
		}
	})
}

func packageSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, c := range []struct {
		md   string
		code []File
	}{
		{`{"type":"golang","path":"example.com/cc","label":"cc_1.0"}`, []File{{Name: "src/go.mod", Data: []byte("module example.com/cc\n")}, {Name: "src/main.go", Data: []byte("package main\n")}}},
		{`{"type":"kubecc","label":"cc"}`, []File{{Name: "image.json", Data: []byte(`{"name":"127.0.0.1:5000/cc","digest":"sha256:` + strings.Repeat("ab", 32) + `"}`)}}},
		{`{"type":"golang","label":"bad label"}`, nil},
		{`{"label":"x"}`, nil},
	} {
		p, err := BuildPackage([]byte(c.md), c.code)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, p)
	}
	return append(seeds, seedTarGz(f, entry{name: "metadata.json", body: `{"type":"golang","label":"x"}`}), seedTarGz(f, entry{name: "code.tar.gz", body: "x"}))
}

func FuzzReadPackageFile(f *testing.F) {
	for _, s := range packageSeeds(f) {
		f.Add(s)
	}
	dir := f.TempDir()
	file := filepath.Join(dir, "pkg.tgz")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := ReadPackageFile(file, fuzzLimits)
		if err != nil {
			if !strings.HasPrefix(err.Error(), file) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if p.Metadata == nil || p.Metadata.Type == "" || p.Code == nil {
			t.Fatalf("accepted package lacks metadata or code: %+v", p)
		}
		if !LabelPattern.MatchString(p.Metadata.Label) {
			t.Fatalf("accepted label %q", p.Metadata.Label)
		}
		if p.ID != PackageID(p.Metadata.Label, data) || !strings.HasPrefix(p.ID, p.Metadata.Label+":") {
			t.Fatalf("package ID %s", p.ID)
		}
		if int64(len(p.Code)) > fuzzLimits.MaxFileSize || len(p.Metadata.Raw) > maxMetadataSize {
			t.Fatalf("accepted oversized entries")
		}
		files, hdrs := readTarGz(t, data)
		checkEntryNames(t, hdrs, fuzzLimits)
		if !bytes.Equal(files[MetadataFile], p.Metadata.Raw) || !bytes.Equal(files[CodeFile], p.Code) {
			t.Fatalf("metadata or code differ from the archive's entries")
		}
		// The code archive goes through the same checks when it is unpacked.
		base := t.TempDir()
		out := filepath.Join(base, "out")
		_ = os.Mkdir(out, 0o755)
		_ = p.ExtractCode(out, fuzzLimits)
		checkExtracted(t, base, out, fuzzLimits)
	})
}

func FuzzParseMetadata(f *testing.F) {
	for _, s := range []string{
		`{"type":"golang","path":"example.com/cc","label":"cc_1.0"}`,
		`{"type":"kubecc","label":"cc","extra":{"kept":true}}`,
		`{"type":"GOLANG","label":"x"}`,
		`{"type":"node","path":"/abs","label":"bad label"}`,
		`{"type":"","label":"x"}`,
		`{"TYPE":"k8s","Label":"x","type":"golang"}`,
		`[1,2]`, `null`, `"x"`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		md, err := ParseMetadata("metadata.json", []byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "metadata.json: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line naming the file: %q", err)
			}
			return
		}
		if md.Type == "" || string(md.Raw) != data {
			t.Fatalf("accepted %+v from %q", md, data)
		}
		switch strings.ToLower(md.Type) {
		case "golang":
			if md.Kind() != KindGo {
				t.Fatalf("type %q: kind %v", md.Type, md.Kind())
			}
		case "kubecc", "k8s":
			if md.Kind() != KindImage {
				t.Fatalf("type %q: kind %v", md.Type, md.Kind())
			}
		case "node":
			if md.Kind() != KindNode {
				t.Fatalf("type %q: kind %v", md.Type, md.Kind())
			}
		default:
			if md.Kind() != KindNone {
				t.Fatalf("type %q: kind %v", md.Type, md.Kind())
			}
		}
		if md.CheckLabel("m") == nil && !LabelPattern.MatchString(md.Label) {
			t.Fatalf("label %q passed CheckLabel", md.Label)
		}
		// Round trip through the fields kubecc reads.
		b, err := json.Marshal(map[string]string{"type": md.Type, "path": md.Path, "label": md.Label})
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseMetadata("m", b)
		if err != nil || again.Type != md.Type || again.Path != md.Path || again.Label != md.Label {
			t.Fatalf("round trip of %+v: %+v %v", md, again, err)
		}
	})
}

func FuzzParseImageRef(f *testing.F) {
	d := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{
		`{"name":"127.0.0.1:5000/kubecc/cc","digest":"` + d + `"}`,
		`{"name":"busybox"}`,
		`{"name":"ghcr.io/org/cc:v1"}`,
		`{"name":"x@` + d + `"}`,
		`{"name":"x","digest":"sha256:zz"}`,
		`{"name":""}`,
		`{"name":"x"} trailing`,
		`{}`, `[]`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		r, err := ParseImageRef("image.json", []byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "image.json: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line naming the file: %q", err)
			}
			return
		}
		if r.Name == "" || strings.ContainsAny(r.Name, " \t\n@") {
			t.Fatalf("accepted name %q", r.Name)
		}
		if r.Digest != "" && !digestPattern.MatchString(r.Digest) {
			t.Fatalf("accepted digest %q", r.Digest)
		}
		if strings.Count(r.Ref(), "@") != map[bool]int{true: 1, false: 0}[r.Digest != ""] {
			t.Fatalf("ref %q", r.Ref())
		}
		again, err := ParseImageRef("image.json", r.Marshal())
		if err != nil || again != r {
			t.Fatalf("round trip of %+v: %+v %v", r, again, err)
		}
	})
}

func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{
		"launch: job\nidleTimeout: 30s\n",
		"launch: pod\n",
		"idleTimeout: 0s\n",
		"launch: lambda\n",
		"idleTimeout: -1s\n",
		"unknown: x\n",
		"launch: [job]\n",
		"a: &a [*a, *a]\n",
		"",
		"# only a comment\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		o, err := ParseOptions("kubecc.yaml", []byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "kubecc.yaml: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line naming the file: %q", err)
			}
			return
		}
		if _, err := ParseLaunchMode(string(o.Launch)); err != nil {
			t.Fatalf("accepted launch %q", o.Launch)
		}
		if o.IdleTimeout != "" {
			if d, err := time.ParseDuration(o.IdleTimeout); err != nil || d < 0 {
				t.Fatalf("accepted idleTimeout %q", o.IdleTimeout)
			}
		}
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseOptions("kubecc.yaml", b)
		if err != nil || again != o {
			t.Fatalf("round trip of %+v (%s): %+v %v", o, b, again, err)
		}
	})
}

func FuzzReadRunConfig(f *testing.F) {
	for _, s := range []string{
		`{"chaincode_id":"cc:abc","peer_address":"p:7052","mspid":"Org1MSP","client_cert":"","client_key":"","root_cert":""}`,
		`{"chaincode_id":"cc:abc","peer_address":"p:7052","mspid":"Org1MSP","client_cert":"C","client_key":"K","root_cert":"R"}`,
		`{"chaincode_id":"cc:abc","peer_address":"p:7052","mspid":"Org1MSP","client_cert":"C","client_key":"","root_cert":"R"}`,
		`{"chaincode_id":"noColon","peer_address":"p:7052","mspid":"m"}`,
		`{"chaincode_id":"cc:abc","mspid":"Org1MSP"}`,
		`{}`, `null`, ``,
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	file := filepath.Join(dir, RunConfigFile)
	f.Fuzz(func(t *testing.T, data string) {
		if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := ReadRunConfig(dir)
		if err != nil {
			if !strings.HasPrefix(err.Error(), file+": ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line naming the file: %q", err)
			}
			return
		}
		if c.ChaincodeID == "" || c.PeerAddress == "" || c.MSPID == "" || !strings.Contains(c.ChaincodeID, ":") {
			t.Fatalf("accepted %+v", c)
		}
		if c.Label()+":"+c.Hash() != c.ChaincodeID {
			t.Fatalf("label %q hash %q of %q", c.Label(), c.Hash(), c.ChaincodeID)
		}
		if all, none := c.ClientCert != "" && c.ClientKey != "" && c.RootCert != "", c.ClientCert == "" && c.ClientKey == "" && c.RootCert == ""; !all && !none || c.TLS() != all {
			t.Fatalf("TLS fields half set: %+v", c)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := ReadRunConfig(dir)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip of %+v: %+v %v", c, again, err)
		}
	})
}
