package main

// Helpers shared by P2, P4 and P5: the process-builder baseline package, the local
// processes of running chaincode (found in /proc) and the peer's Prometheus metrics.

import (
	"bufio"
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
	p, err := chaincode.ReadPackageFile(golang, chaincode.DefaultLimits)
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
func procStatus(pid int, field string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
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
	return 0, fmt.Errorf("pid %d: no %s in its status", pid, field)
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
