//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecc/kubecc/pkg/build"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/names"
)

// TestHostile installs packages written to attack the peer's host through the real
// peer: replaces that read host files, a go line that would download a toolchain, an
// image from a registry the operator did not allow, labels that sanitise alike; and
// checks that a launch's TLS key reaches no object but its Secret and no log.
func TestHostile(t *testing.T) {
	h := newHarness(t)
	t.Cleanup(func() {
		if t.Failed() {
			h.dumpDiagnostics(t)
		}
	})
	h.requireTLS(t) // scenario 6 needs the peer to mint keys

	t.Run("1 go.mod replace to an absolute host folder is refused, nothing leaks to the registry", func(t *testing.T) {
		dir := t.TempDir()
		leakDir := filepath.Join(dir, "leak")
		marker := leakModule(t, leakDir)
		cc := hostileSource(t, filepath.Join(dir, "cc"), leakDir)
		label := uniqueLabel("hostile_abs")
		pkg := h.packageSource(t, cc, label)
		h.goWouldRead(t, cc, leakDir)
		h.refusedReplace(t, pkg, label, leakDir, marker)
	})

	t.Run("2 go.mod replace to ../ leaving the package is refused, nothing leaks to the registry", func(t *testing.T) {
		dir := t.TempDir()
		leakDir := filepath.Join(dir, "leak")
		marker := leakModule(t, leakDir)
		// The peer unpacks code.tar.gz into <tmp>/fabric-<id>/src, so go.mod sits at
		// .../src/src/go.mod and ../x is still inside the package. Enough ../ climb to
		// / from both the author's folder and the peer's, then down to the host folder.
		target := strings.Repeat("../", 12) + strings.TrimPrefix(leakDir, "/")
		cc := hostileSource(t, filepath.Join(dir, "cc"), target)
		label := uniqueLabel("hostile_rel")
		pkg := h.packageSource(t, cc, label)
		h.goWouldRead(t, cc, leakDir)
		h.refusedReplace(t, pkg, label, target, marker)
	})

	t.Run("3 go 1.99 in go.mod fails at once, no toolchain download", func(t *testing.T) {
		// The peer CLI cannot package it (its go list refuses the go line too): package
		// the example, then change the go line inside the package.
		pkg := h.rewritePackage(t, h.goPackage(t, "hostile_go199"), func(name string, data []byte) []byte {
			if name != "src/go.mod" {
				return data
			}
			re := regexp.MustCompile(`(?m)^go [0-9.]+$`)
			if !re.Match(data) {
				t.Fatalf("no go line in the example's go.mod:\n%s", data)
			}
			return re.ReplaceAll(data, []byte("go 1.99"))
		})
		off := h.peerLogOffset(t)
		out, took := h.installRefused(t, pkg)
		t.Logf("install refused after %s", took.Round(time.Millisecond))
		if took > 60*time.Second {
			t.Errorf("install took %s, want a failure within 60 s", took)
		}
		log := h.peerLogSince(t, off)
		line := findLine(log, "requires go >= 1.99")
		if line == "" {
			t.Fatalf("the peer log does not say go.mod requires go >= 1.99:\n%s\n%s", out, kubeccLines(log))
		}
		if !strings.Contains(line, "GOTOOLCHAIN=local") {
			t.Errorf("the error does not say GOTOOLCHAIN=local: %s", line)
		}
		for _, s := range []string{"golang.org/toolchain", "downloading go1.99", "go: downloading go"} {
			if strings.Contains(log, s) {
				t.Errorf("the peer log shows a toolchain download (%q):\n%s", s, kubeccLines(log))
			}
		}
		h.notInstalled(t, "hostile_go199")
	})

	t.Run("4 image package from a registry outside allowedRegistries is refused", func(t *testing.T) {
		h.allowRegistries(t, h.vars["REGISTRY"])
		digest := make([]byte, 32)
		_, _ = rand.Read(digest)
		ref := chaincode.ImageRef{Name: "example.org/evil/cc", Digest: "sha256:" + hex.EncodeToString(digest)}
		data, err := chaincode.BuildPackage([]byte(`{"type":"kubecc","label":"hostile_evil"}`), []chaincode.File{{Name: chaincode.ImageFile, Data: ref.Marshal()}})
		if err != nil {
			t.Fatal(err)
		}
		pkg := filepath.Join(t.TempDir(), "hostile_evil.tgz")
		if err := os.WriteFile(pkg, data, 0o644); err != nil {
			t.Fatal(err)
		}
		off := h.peerLogOffset(t)
		out, took := h.installRefused(t, pkg)
		t.Logf("install refused after %s", took.Round(time.Millisecond))
		log := h.peerLogSince(t, off)
		line := findLine(log, "registry example.org is not in allowedRegistries")
		if line == "" {
			t.Fatalf("the peer log has no allowedRegistries refusal:\n%s\n%s", out, kubeccLines(log))
		}
		if !strings.Contains(line, "image.json") || !strings.Contains(line, h.vars["REGISTRY"]) {
			t.Errorf("the refusal does not name image.json and the allowed registry: %s", line)
		}
		if took > 15*time.Second {
			t.Errorf("refusal took %s: was a registry contacted?", took)
		}
		h.notInstalled(t, "hostile_evil")
	})

	t.Run("5 labels that sanitise alike get separate objects: deleting one pod leaves the other", func(t *testing.T) {
		a, b := h.sameStem(t, "same_cc", "A"), h.sameStem(t, "same.cc", "B")
		t.Cleanup(func() { h.stopChaincode(t, a, b) })
		h.settled(t, a, b)
		h.ensureDeployed(t, "same_cc", a)
		h.ensureDeployed(t, "same-cc", b)
		h.mustInvoke(t, "same_cc", "put", "k", "a1")
		h.mustInvoke(t, "same-cc", "put", "k", "b1")
		h.mustQuery(t, "same_cc", "a1", "get", "k")
		h.mustQuery(t, "same-cc", "b1", "get", "k")
		h.mustQuery(t, "same_cc", "A", "who")
		h.mustQuery(t, "same-cc", "B", "who")
		podA, podB := h.runningPod(t, a, 60*time.Second), h.runningPod(t, b, 60*time.Second)
		stem := "cc-" + names.Slug("same_cc", 32, "chaincode") + "-"
		if !strings.HasPrefix(podA.Name, stem) || !strings.HasPrefix(podB.Name, stem) {
			t.Fatalf("pods %s and %s do not share the stem %s: pick labels that do", podA.Name, podB.Name, stem)
		}
		if podA.Spec.Containers[0].Image == podB.Spec.Containers[0].Image {
			t.Fatalf("both pods run %s", podA.Spec.Containers[0].Image)
		}
		if podA.Labels["kubecc.io/package-hash"] == podB.Labels["kubecc.io/package-hash"] {
			t.Fatalf("both pods carry package-hash %s", podA.Labels["kubecc.io/package-hash"])
		}
		secretB := h.onlySecret(t, b)
		zero := int64(0)
		if err := h.kube.CoreV1().Pods(h.ns).Delete(context.Background(), podA.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "the deleted pod and its secret gone", func() bool {
			for _, p := range h.pods(t, a) {
				if p.Name == podA.Name {
					return false
				}
			}
			for _, s := range h.secrets(t, a) {
				if s.Name == podA.Name {
					return false
				}
			}
			return true
		})
		// The pod object goes at once, its container a little later: until then it
		// still serves. Wait for it, so that the invoke below must relaunch.
		h.waitNoChaincodeProcess(t, a)
		// Give run of the other package time to do something wrong, if it would.
		time.Sleep(time.Second)
		h.sameObjects(t, b, podB, secretB)
		if len(h.chaincodeProcesses(t, b)) != 1 {
			t.Fatalf("the other chaincode's container process is gone")
		}
		eventually(t, 60*time.Second, "invoke of the deleted chaincode", func() bool {
			_, err := h.invoke("same_cc", "put", "k", "a2")
			return err == nil
		})
		h.mustQuery(t, "same_cc", "a2", "get", "k")
		if p := h.runningPod(t, a, 30*time.Second); p.Name == podA.Name {
			t.Fatalf("pod %s was not replaced", p.Name)
		}
		h.sameObjects(t, b, podB, secretB)
		h.mustQuery(t, "same-cc", "b1", "get", "k")
	})

	t.Run("6 a launch's TLS key is in its Secret only: no object, event or log line holds it", func(t *testing.T) {
		id := h.sameStem(t, "same_cc", "A")
		t.Cleanup(func() { h.stopChaincode(t, id) })
		h.settled(t, id)
		h.ensureDeployed(t, "same_cc", id)
		h.mustQuery(t, "same_cc", "pong", "ping")
		pod := h.runningPod(t, id, 60*time.Second)
		sec := h.onlySecret(t, id)
		if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != pod.UID {
			t.Errorf("secret %s is not owned by its pod: %v", sec.Name, sec.OwnerReferences)
		}
		key := sec.Data["client.key"]
		needles := keyNeedles(t, key)
		found := map[string][]string{}
		search := func(where string, data []byte) {
			for _, n := range needles {
				if bytes.Contains(data, []byte(n)) {
					found[where] = append(found[where], n[:12]+"...")
				}
			}
		}
		ctx := context.Background()
		core := h.kube.CoreV1()
		pods, err := core.Pods(h.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range pods.Items {
			search("pod "+o.Name, mustJSON(t, o))
		}
		jobs, err := h.kube.BatchV1().Jobs(h.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range jobs.Items {
			search("job "+o.Name, mustJSON(t, o))
		}
		secrets, err := core.Secrets(h.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range secrets.Items {
			if o.UID == sec.UID {
				o.Data, o.StringData = nil, nil
			}
			search("secret "+o.Name, mustJSON(t, o))
		}
		cms, err := core.ConfigMaps(h.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range cms.Items {
			search("configmap "+o.Name, mustJSON(t, o))
		}
		events, err := core.Events(h.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range events.Items {
			search("event "+o.Name, mustJSON(t, o))
		}
		logs, err := core.Pods(h.ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		search("log of pod "+pod.Name, logs)
		search("peer log", []byte(h.peerLog(t)))
		t.Logf("searched %d pods, %d jobs, %d secrets, %d configmaps, %d events, the pod log and the peer log for %d forms of the key",
			len(pods.Items), len(jobs.Items), len(secrets.Items), len(cms.Items), len(events.Items), len(needles))
		for where, what := range found {
			t.Errorf("the launch's TLS key is in %s: %v", where, what)
		}
	})
}

// uniqueLabel is prefix with a random suffix: what a refused install must not leave
// (a registry repository named after the label) is then this run's alone.
func uniqueLabel(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// leakModule writes module example.com/leak into dir: it embeds a file holding a
// random marker, which is returned.
func leakModule(t *testing.T, dir string) string {
	t.Helper()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	marker := "kubecc-leak-" + hex.EncodeToString(b)
	files := map[string]string{
		"go.mod":     "module example.com/leak\n\ngo 1.24\n",
		"secret.txt": marker,
		"leak.go":    "package leak\n\nimport _ \"embed\"\n\n// Secret is a file of the peer's host.\n//\n//go:embed secret.txt\nvar Secret string\n",
	}
	writeFiles(t, dir, files)
	return marker
}

// hostileSource copies the example chaincode into dir and makes it import
// example.com/leak from target (a go.mod replace) and print its embedded file.
func hostileSource(t *testing.T, dir, target string) string {
	t.Helper()
	copyExample(t, dir)
	f, err := os.OpenFile(filepath.Join(dir, "go.mod"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "\nrequire example.com/leak v0.0.0\n\nreplace example.com/leak => %s\n", target)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"leak.go": "package main\n\nimport (\n\t\"os\"\n\n\t\"example.com/leak\"\n)\n\nfunc init() {\n\tif os.Getenv(\"LEAK\") != \"\" {\n\t\t_, _ = os.Stdout.WriteString(leak.Secret)\n\t}\n}\n",
	})
	return dir
}

func copyExample(t *testing.T, dir string) {
	t.Helper()
	src := filepath.Join("..", exampleCC)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	writeFiles(t, dir, files)
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// packageSource packages a Go chaincode folder with the stock peer CLI.
func (h *harness) packageSource(t *testing.T, dir, label string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), label+".tgz")
	h.peer(t, "lifecycle", "chaincode", "package", out, "--path", dir, "--lang", "golang", "--label", label)
	return out
}

// goWouldRead proves the hostile source is a real attack: the go command, left to
// itself, would compile example.com/leak from leakDir and embed its secret.
func (h *harness) goWouldRead(t *testing.T, dir, leakDir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := execCommand(ctx, "go", "list", "-f", "{{.Dir}} {{.EmbedFiles}}", "example.com/leak")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list example.com/leak in the hostile source: %v\n%s", err, out)
	}
	if want := leakDir + " [secret.txt]"; strings.TrimSpace(string(out)) != want {
		t.Fatalf("go list says %q, want %q", strings.TrimSpace(string(out)), want)
	}
}

// refusedReplace installs a package whose go.mod replaces example.com/leak with
// target and checks that the install fails naming go.mod and the replace, and that
// the marker reached neither the registry nor the peer log.
func (h *harness) refusedReplace(t *testing.T, pkg, label, target, marker string) {
	t.Helper()
	start := time.Now()
	off := h.peerLogOffset(t)
	out, took := h.installRefused(t, pkg)
	t.Logf("install refused after %s", took.Round(time.Millisecond))
	log := h.peerLogSince(t, off)
	line := findLine(log, "replace example.com/leak => "+target)
	if line == "" {
		t.Fatalf("the peer log does not name the replace:\n%s\n%s", out, kubeccLines(log))
	}
	if !strings.Contains(line, "go.mod") || !strings.Contains(line, "outside the package") {
		t.Errorf("the refusal does not name go.mod and say why: %s", line)
	}
	if strings.Contains(h.peerLog(t), marker) {
		t.Error("the secret marker is in the peer log")
	}
	h.notInstalled(t, label)
	h.registryHasNo(t, build.RepoName(label), marker, start)
}

// installRefused runs peer lifecycle chaincode install, which must fail in the
// external builder; it returns the CLI's output and how long it took.
func (h *harness) installRefused(t *testing.T, pkg string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := h.run(ctx, "peer", "lifecycle", "chaincode", "install", pkg)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("install of a hostile package succeeded:\n%s", out)
	}
	if !strings.Contains(out, "external builder") {
		t.Fatalf("install failed, but not in the external builder:\n%s", out)
	}
	return out, took
}

// notInstalled checks that the peer lists no installed package with label.
func (h *harness) notInstalled(t *testing.T, label string) {
	t.Helper()
	out := h.peer(t, "lifecycle", "chaincode", "queryinstalled", "-O", "json")
	if strings.Contains(out, `"`+label+`:`) || strings.Contains(out, `"label": "`+label+`"`) {
		t.Errorf("the peer lists %s as installed:\n%s", label, out)
	}
}

// registryHasNo checks that the registry has no repository for the label and that no
// file the registry stored since start (blobs, gzipped layers unpacked) holds marker.
func (h *harness) registryHasNo(t *testing.T, repo, marker string, since time.Time) {
	t.Helper()
	var repos []string
	for next := "/v2/_catalog?n=1000"; next != ""; {
		resp, err := http.Get("http://" + h.vars["REGISTRY"] + next)
		if err != nil {
			t.Fatal(err)
		}
		var cat struct {
			Repositories []string `json:"repositories"`
		}
		err = json.NewDecoder(resp.Body).Decode(&cat)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("registry catalog: %s %v", resp.Status, err)
		}
		repos = append(repos, cat.Repositories...)
		// Link: </v2/_catalog?last=x&n=1000>; rel="next"
		next = ""
		if l := resp.Header.Get("Link"); strings.HasPrefix(l, "<") && strings.Contains(l, ">") {
			next = l[1:strings.Index(l, ">")]
		}
	}
	if len(repos) == 0 {
		t.Fatal("the registry lists no repository at all: is the catalog readable?")
	}
	for _, r := range repos {
		if strings.HasSuffix(r, "/"+repo) || r == repo {
			t.Errorf("the registry has a repository %s", r)
		}
	}
	root := filepath.Join(h.root, "registry")
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("registry storage: %v", err)
	}
	scanned := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil || info.ModTime().Before(since.Add(-2*time.Second)) {
			return err
		}
		scanned++
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(marker)) {
			t.Errorf("the marker is in the registry's %s", p)
		}
		if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
			if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
				plain, _ := io.ReadAll(io.LimitReader(zr, 1<<30))
				if bytes.Contains(plain, []byte(marker)) {
					t.Errorf("the marker is in the registry's layer %s", p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("registry: %d repositories, none %s; %d files written during the test, none holds the marker", len(repos), repo, scanned)
}

// rewritePackage writes a copy of a package file with code.tar.gz's files passed
// through edit.
func (h *harness) rewritePackage(t *testing.T, pkg string, edit func(name string, data []byte) []byte) string {
	t.Helper()
	outer := readTarGz(t, mustRead(t, pkg))
	var md []byte
	var code []chaincode.File
	for _, f := range outer {
		switch f.Name {
		case chaincode.MetadataFile:
			md = f.Data
		case chaincode.CodeFile:
			for _, c := range readTarGz(t, f.Data) {
				c.Data = edit(c.Name, c.Data)
				code = append(code, c)
			}
		}
	}
	data, err := chaincode.BuildPackage(md, code)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rewritten-"+filepath.Base(pkg))
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func readTarGz(t *testing.T, data []byte) []chaincode.File {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var files []chaincode.File
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, chaincode.File{Name: hdr.Name, Data: b, Mode: hdr.Mode})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// allowRegistries sets allowedRegistries in the builder's config.yaml (the hooks read
// it at every call) until the test ends.
func (h *harness) allowRegistries(t *testing.T, hosts ...string) {
	t.Helper()
	file := filepath.Join(h.root, "builder", "config.yaml")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	write := func(data []byte) error {
		tmp := file + ".e2e-hostile"
		if err := os.WriteFile(tmp, data, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Rename(tmp, file)
	}
	if strings.Contains(string(orig), "allowedRegistries:") {
		t.Fatalf("%s sets allowedRegistries already: this test adds its own", file)
	}
	ours := "allowedRegistries: [" + strings.Join(hosts, ", ") + "] # e2e TestHostile, removed when it ends"
	// On cleanup, take out our line only: whatever else changed in the file
	// meanwhile (the harness is shared) stays.
	t.Cleanup(func() {
		now, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("restore %s: %v", file, err)
			return
		}
		var keep []string
		for _, l := range strings.Split(string(now), "\n") {
			if l != ours {
				keep = append(keep, l)
			}
		}
		if err := write([]byte(strings.Join(keep, "\n"))); err != nil {
			t.Errorf("restore %s: %v", file, err)
		}
	})
	if err := write([]byte(strings.TrimRight(string(orig), "\n") + "\n" + ours + "\n")); err != nil {
		t.Fatal(err)
	}
}

// sameStem packages a copy of the example chaincode that answers `who` with who,
// installs it under label, and returns its package ID. The same arguments give the
// same package (and ID) on every run.
func (h *harness) sameStem(t *testing.T, label, who string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cc")
	copyExample(t, dir)
	main := filepath.Join(dir, "main.go")
	src := string(mustRead(t, main))
	anchor := "\tcase fn == \"ping\":\n"
	if !strings.Contains(src, anchor) {
		t.Fatalf("the example chaincode has no %q case to add `who` before", "ping")
	}
	src = strings.Replace(src, anchor, "\tcase fn == \"who\":\n\t\treturn ok([]byte(\""+who+"\"))\n"+anchor, 1)
	if err := os.WriteFile(main, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	id := h.installOrReuse(t, h.packageSource(t, dir, label))
	t.Logf("%s installed in %s", id, time.Since(start).Round(time.Millisecond))
	return id
}

// installOrReuse installs a package, or returns its ID when the peer has it already
// (the suite may run again on the same peer; Fabric v3 answers a second install with
// an error naming the package ID).
func (h *harness) installOrReuse(t *testing.T, pkg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := h.run(ctx, "peer", "lifecycle", "chaincode", "install", pkg)
	if m := alreadyInstalled.FindStringSubmatch(out); err != nil && m != nil {
		return m[1]
	}
	if err != nil {
		t.Fatal(err)
	}
	m := packageIDLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("install printed no package ID:\n%s", out)
	}
	return m[1]
}

var alreadyInstalled = regexp.MustCompile(`chaincode already successfully installed \(package ID '([^']+)'\)`)

// ensureDeployed commits name for packageID unless it is committed so already (the
// suite may run again on the same channel): a definition approved for another
// package gets the next sequence.
func (h *harness) ensureDeployed(t *testing.T, name, packageID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.run(ctx, "peer", "lifecycle", "chaincode", "querycommitted", "-C", h.vars["CHANNEL"], "-n", name, "-O", "json")
	if err != nil {
		if !strings.Contains(out, "is not defined") {
			t.Fatal(err)
		}
		h.deploy(t, name, packageID, 1)
		return
	}
	var def struct {
		Sequence int `json:"sequence"`
	}
	if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &def) != nil || def.Sequence == 0 {
		t.Fatalf("querycommitted %s: %s", name, out)
	}
	approved := h.peer(t, "lifecycle", "chaincode", "queryapproved", "-C", h.vars["CHANNEL"], "-n", name, "--sequence", fmt.Sprint(def.Sequence), "-O", "json")
	if strings.Contains(approved, `"`+packageID+`"`) {
		return
	}
	h.deploy(t, name, packageID, def.Sequence+1)
}

// onlySecret returns the one Secret of a package.
func (h *harness) onlySecret(t *testing.T, packageID string) corev1.Secret {
	t.Helper()
	var s []corev1.Secret
	eventually(t, 10*time.Second, "one secret of "+packageID, func() bool {
		s = h.secrets(t, packageID)
		return len(s) == 1
	})
	return s[0]
}

// sameObjects checks that the package's pod and secret are still the ones given.
func (h *harness) sameObjects(t *testing.T, packageID string, pod corev1.Pod, secret corev1.Secret) {
	t.Helper()
	pods, secrets := h.pods(t, packageID), h.secrets(t, packageID)
	if len(pods) != 1 || pods[0].UID != pod.UID || pods[0].DeletionTimestamp != nil || pods[0].Status.Phase != corev1.PodRunning {
		t.Fatalf("the other chaincode's pod %s (%s) was touched: now %v", pod.Name, pod.UID, podPhases(pods))
	}
	if len(secrets) != 1 || secrets[0].UID != secret.UID {
		t.Fatalf("the other chaincode's secret %s was touched: %d secrets now", secret.Name, len(secrets))
	}
}

// stopChaincode deletes the pods of the packages (run then exits and deletes the
// rest) and waits until no pod, secret or chaincode process of them is left: a
// container that still runs would serve the next call instead of a new launch.
func (h *harness) stopChaincode(t *testing.T, packageIDs ...string) {
	t.Helper()
	defer func() {
		for _, id := range packageIDs {
			h.waitNoChaincodeProcess(t, id)
		}
	}()
	zero := int64(0)
	eventually(t, 60*time.Second, "no pod or secret of the test's chaincode left", func() bool {
		left := false
		for _, id := range packageIDs {
			for _, p := range h.pods(t, id) {
				left = true
				if p.DeletionTimestamp == nil {
					_ = h.kube.CoreV1().Pods(h.ns).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
				}
			}
			if len(h.secrets(t, id)) > 0 || h.jobs(t, id) > 0 {
				left = true
			}
		}
		return !left
	})
}

// chaincodeProcesses are the pids of the chaincode containers of a package on this
// node: processes with CORE_CHAINCODE_ID_NAME=packageID in their environment.
func (h *harness) chaincodeProcesses(t *testing.T, packageID string) []string {
	t.Helper()
	want := []byte("CORE_CHAINCODE_ID_NAME=" + packageID + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []string
	for _, d := range dirs {
		if env, err := os.ReadFile(filepath.Join(d, "environ")); err == nil && bytes.Contains(env, want) {
			pids = append(pids, filepath.Base(d))
		}
	}
	return pids
}

// settled waits until a package without a pod has no container left either (one
// being killed would answer the next call, and no pod would launch).
func (h *harness) settled(t *testing.T, packageIDs ...string) {
	t.Helper()
	for _, id := range packageIDs {
		if len(h.pods(t, id)) == 0 {
			h.waitNoChaincodeProcess(t, id)
		}
	}
}

func (h *harness) waitNoChaincodeProcess(t *testing.T, packageID string) {
	t.Helper()
	eventually(t, 30*time.Second, "the chaincode container of "+packageID+" gone", func() bool {
		return len(h.chaincodeProcesses(t, packageID)) == 0
	})
}

// keyNeedles are the forms of a PEM key to look for: every line of its body, the
// body in one piece, and its base64 form (whole, and a key-specific stretch of it:
// the start encodes the BEGIN line every key shares).
func keyNeedles(t *testing.T, key []byte) []string {
	t.Helper()
	block, _ := pem.Decode(key)
	if block == nil || !strings.Contains(block.Type, "PRIVATE KEY") {
		t.Fatalf("client.key of the secret is not a PEM private key")
	}
	body := base64.StdEncoding.EncodeToString(block.Bytes)
	needles := []string{body}
	for _, l := range strings.Split(string(key), "\n") {
		if len(l) >= 40 && !strings.HasPrefix(l, "-----") {
			needles = append(needles, l)
		}
	}
	b64 := base64.StdEncoding.EncodeToString(key)
	needles = append(needles, b64, b64[len(b64)/2-24:len(b64)/2+24])
	return needles
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) peerLogOffset(t *testing.T) int64 {
	t.Helper()
	info, err := os.Stat(filepath.Join(h.root, "logs/peer.log"))
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// peerLogSince returns what the peer logged after offset.
func (h *harness) peerLogSince(t *testing.T, off int64) string {
	t.Helper()
	log := h.peerLog(t)
	if int64(len(log)) < off {
		return log // a new log file
	}
	return log[off:]
}

func findLine(log, sub string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// kubeccLines are the hooks' lines of a peer log stretch, for failure messages.
func kubeccLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "externalbuilder") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
