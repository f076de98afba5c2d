//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/kubecc/kubecc/pkg/chaincode"
)

// manyChaincodes is how many different packages TestManyChaincodes puts on one peer.
const manyChaincodes = 20

// variantSource is the example chaincode with a line of its own, so that every
// package compiles to a different binary and image.
func variantSource(t *testing.T, i int) string {
	t.Helper()
	dir := t.TempDir()
	copyExample(t, dir)
	writeFiles(t, dir, map[string]string{
		"variant.go": fmt.Sprintf("package main\n\nimport \"os\"\n\nfunc init() { _, _ = os.Stderr.WriteString(\"variant %d\\n\") }\n", i),
	})
	return dir
}

func TestManyChaincodes(t *testing.T) {
	h := newHarness(t)
	t.Cleanup(func() {
		if t.Failed() {
			h.dumpDiagnostics(t)
		}
	})
	h.requireTLS(t)
	run := time.Now().Unix() % 1000000
	names := make([]string, manyChaincodes)
	ids := make([]string, manyChaincodes)
	t.Cleanup(func() {
		// Twenty resident pods would weigh on the suites after this one.
		var installed []string
		for _, id := range ids {
			if id != "" {
				installed = append(installed, id)
			}
		}
		h.stopChaincode(t, installed...)
	})

	start := time.Now()
	images := map[string]string{}
	for i := range ids {
		names[i] = fmt.Sprintf("many%d_%02d", run, i)
		ids[i] = h.install(t, h.packageSource(t, variantSource(t, i), names[i]))
		ref, err := chaincode.ParseImageRef("image.json", []byte(h.buildOutput(t, ids[i])))
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := images[ref.Digest]; dup {
			t.Fatalf("%s and %s share image %s", other, names[i], ref.Digest)
		}
		images[ref.Digest] = names[i]
	}
	t.Logf("%d different packages installed back to back in %s", manyChaincodes, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	for i, id := range ids {
		h.deploy(t, names[i], id, 1)
	}
	for i := range ids {
		h.mustInvoke(t, names[i], "put", "k", fmt.Sprint("v", i))
	}
	for i := range ids {
		h.mustQuery(t, names[i], fmt.Sprint("v", i), "get", "k")
	}
	t.Logf("all %d committed, written and read in %s", manyChaincodes, time.Since(start).Round(time.Millisecond))

	old := map[string]string{} // package ID → pod name before the kill
	for _, id := range ids {
		old[id] = h.runningPod(t, id, 30*time.Second).Name
	}
	h.peerCtl(t, "kill")
	killed := time.Now()
	h.peerCtl(t, "start")
	// The peer launches every installed and committed chaincode at start, before any
	// call: each gets a new pod without being asked.
	eventually(t, 3*time.Minute, "a new running pod for every chaincode, launched by the peer at start", func() bool {
		for _, id := range ids {
			ready := false
			for _, p := range h.pods(t, id) {
				ready = ready || (p.Name != old[id] && p.DeletionTimestamp == nil && p.Status.Phase == "Running")
			}
			if !ready {
				return false
			}
		}
		return true
	})
	t.Logf("all %d relaunched %s after the peer was killed", manyChaincodes, time.Since(killed).Round(time.Millisecond))
	for i := range ids {
		h.mustQuery(t, names[i], fmt.Sprint("v", i), "get", "k")
	}
	t.Logf("all %d served again %s after the peer was killed", manyChaincodes, time.Since(killed).Round(time.Millisecond))

	// Nothing of the old instances 60 s after the kill: one pod, one Secret, one run
	// hook and one chaincode container per package.
	deadline := killed.Add(60 * time.Second)
	eventually(t, max(time.Until(deadline), time.Second), "only the new instance of every chaincode", func() bool {
		for _, id := range ids {
			pods := h.pods(t, id)
			if len(pods) != 1 || pods[0].Name == old[id] || len(h.secrets(t, id)) != 1 ||
				len(runHookProcs(id)) != 1 || len(h.chaincodeProcesses(t, id)) != 1 {
				return false
			}
		}
		return true
	})
}
