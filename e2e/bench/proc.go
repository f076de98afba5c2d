package main

// Helpers shared by P2, P4 and P5: the process-builder baseline package, the local
// processes of running chaincode (found in /proc) and the peer's Prometheus metrics.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubecc/kubecc/pkg/chaincode"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// procgoPackage packages examples/chaincode/go with `peer lifecycle chaincode package
// --lang golang` and rewrites metadata.json's type to procgo, keeping the same
// code.tar.gz: kubecc (the peer's first builder) claims every golang package, the
// process builder (the second) also accepts procgo.
func procgoPackage(ctx context.Context, n *network, dir, label string) (string, error) {
	golang := filepath.Join(dir, label+".golang.tgz")
	if _, err := n.run(ctx, "peer", "lifecycle", "chaincode", "package", golang, "--lang", "golang",
		"--path", filepath.Join(n.repo, "examples", "chaincode", "go"), "--label", label); err != nil {
		return "", err
	}
	p, err := chaincode.ReadPackageFile(golang, chaincode.DefaultLimits())
	if err != nil {
		return "", err
	}
	var md map[string]any
	if err := json.Unmarshal(p.Metadata.Raw, &md); err != nil {
		return "", err
	}
	md["type"] = "procgo"
	mdBytes, err := json.Marshal(md)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, label+".tgz")
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	err = chaincode.WriteTarGz(f, []chaincode.File{
		{Name: chaincode.MetadataFile, Data: mdBytes},
		{Name: chaincode.CodeFile, Data: p.Code},
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return out, err
}

// dashedID is a package ID as it appears in the peer's build and run paths.
func dashedID(packageID string) string { return strings.ReplaceAll(packageID, ":", "-") }

// localProc is one process on this machine.
type localProc struct {
	PID  int
	Args []string
}

// procsOf lists the processes whose argv[0] ends with exe and whose command line
// mentions the package (its ID with ':' replaced by '-': the peer's build dir).
func procsOf(packageID, exe string) []localProc {
	entries, _ := os.ReadDir("/proc")
	want := dashedID(packageID)
	var out []localProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if !strings.HasSuffix(args[0], exe) || !strings.Contains(string(data), want) {
			continue
		}
		out = append(out, localProc{PID: pid, Args: args})
	}
	return out
}

// runProcs are kubecc's `run` processes for a package.
func runProcs(packageID string) []localProc { return procsOf(packageID, "/bin/run") }

// chaincodeProcs are the chaincode processes the process builder started for a package.
func chaincodeProcs(packageID string) []localProc { return procsOf(packageID, "/chaincode") }

// procStatus reads a field of /proc/PID/status in bytes (VmRSS, VmHWM: kB there).
func procStatus(pid int, field string) (float64, error) { return procKB(pid, "status", field) }

// procKB reads a "Field: N kB" line of /proc/PID/file (status, smaps_rollup) in bytes.
func procKB(pid int, file, field string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			break
		}
		kb, err := strconv.ParseFloat(fs[0], 64)
		return kb * 1024, err
	}
	return 0, fmt.Errorf("pid %d: no %s in its %s", pid, field, file)
}

// waitProcs waits until list() is empty (true) or timeout passes (false).
func waitProcs(list func() []localProc, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if len(list()) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killProcs sends SIGKILL to the processes.
func killProcs(ps []localProc) {
	for _, p := range ps {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
}

// peerMetrics is one scrape of the peer's operations endpoint: series (name and
// labels exactly as exposed) to value.
type peerMetrics map[string]float64

func scrapePeer(ctx context.Context, n *network) (peerMetrics, error) {
	addr := n.vars["PEER_OPERATIONS"]
	if addr == "" {
		addr = "127.0.0.1:9443"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("peer metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	m := peerMetrics{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, nil
}

// sum adds the series of metric name whose labels include every one of labels
// (each `key="value"`).
func (m peerMetrics) sum(name string, labels ...string) float64 {
	t := 0.0
	for series, v := range m {
		base, rest, _ := strings.Cut(series, "{")
		if base != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
				break
			}
		}
		if ok {
			t += v
		}
	}
	return t
}

// histDelta is the count and mean of a histogram's observations between two scrapes.
func histDelta(before, after peerMetrics, name string, labels ...string) (count, mean float64) {
	count = after.sum(name+"_count", labels...) - before.sum(name+"_count", labels...)
	s := after.sum(name+"_sum", labels...) - before.sum(name+"_sum", labels...)
	if count > 0 {
		mean = s / count
	}
	return count, mean
}

func label(k, v string) string { return fmt.Sprintf("%s=%q", k, v) }

// uptimeNow is the seconds since boot (/proc/uptime, 10 ms resolution), the clock
// of procStarted.
func uptimeNow() float64 {
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// procStarted is when a process started, in seconds since boot (field 22 of
// /proc/PID/stat, in clock ticks of 10 ms).
func procStarted(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, fmt.Errorf("pid %d: odd stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("pid %d: short stat", pid)
	}
	ticks, err := strconv.ParseFloat(f[19], 64) // field 22 counts pid and comm
	return ticks / 100, err
}

// envProcs lists the processes whose environment holds CORE_CHAINCODE_ID_NAME set to
// the package ID: the chaincode itself, wherever it runs on this machine (a pod's
// container process included).
func envProcs(packageID string) []localProc {
	entries, _ := os.ReadDir("/proc")
	want := []byte("CORE_CHAINCODE_ID_NAME=" + packageID + "\x00")
	var out []localProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(data, want) {
			continue
		}
		args, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, localProc{PID: pid, Args: strings.Split(strings.TrimRight(string(args), "\x00"), "\x00")})
	}
	return out
}

// startedSince is when the first of ps started, in seconds after t0 (uptime seconds).
func startedSince(ps []localProc, t0 float64) (float64, bool) {
	best, ok := 0.0, false
	for _, p := range ps {
		if s, err := procStarted(p.PID); err == nil && (!ok || s < best) {
			best, ok = s, true
		}
	}
	return best - t0, ok
}

// stopChaincodes ends chaincodes a benchmark started, so that it leaves nothing running:
// kubecc's pods are deleted (run exits, and the peer forgets the chaincode until its next
// call), procbuilder's chaincode processes are killed.
func stopChaincodes(ctx context.Context, n *network, packageIDs ...string) {
	zero := int64(0)
	list, err := n.kube.CoreV1().Pods(n.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubecc"})
	for _, id := range packageIDs {
		killProcs(chaincodeProcs(id))
		if err != nil {
			continue
		}
		for _, p := range list.Items {
			if p.Annotations["kubecc.io/package-id"] == id && p.DeletionTimestamp == nil {
				_ = n.kube.CoreV1().Pods(n.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			}
		}
	}
}

// deployPair deploys the example chaincode twice under prefix: as a kubecc resident pod
// (name prefix+"k") and as the process builder's baseline (prefix+"b"), and calls each
// once so both are running.
func deployPair(ctx context.Context, n *network, dir, prefix string) (kName, kID, bName, bID string, err error) {
	kName, bName = prefix+"k", prefix+"b"
	kPkg, err := n.kubeccPackage(ctx, dir, kName, "--launch", "pod")
	if err != nil {
		return
	}
	if kID, err = n.deploy(ctx, kName, kPkg); err != nil {
		return
	}
	bPkg, err := procgoPackage(ctx, n, dir, bName)
	if err != nil {
		return
	}
	if bID, err = n.deploy(ctx, bName, bPkg); err != nil {
		return
	}
	for _, name := range []string{kName, bName} {
		if _, err = n.contract(name).SubmitTransaction("put", "k", "v"); err != nil {
			err = fmt.Errorf("first call of %s: %w", name, err)
			return
		}
	}
	if len(chaincodeProcs(bID)) == 0 {
		err = fmt.Errorf("%s does not run as a local process: is procbuilder the peer's second builder (bash e2e/up.sh)?", bID)
	}
	return
}
