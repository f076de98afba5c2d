package podspec

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
)

func params(t *testing.T, tls bool) *Params {
	t.Helper()
	cfg, err := config.Load(t.TempDir(), func(k string) (string, bool) {
		if k == "KUBECC_NAMESPACE" {
			return "cc", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	rc := &chaincode.RunConfig{ChaincodeID: "My_CC+1.0:" + strings.Repeat("ab", 32), PeerAddress: "peer0:7052", MSPID: "Org1MSP"}
	if tls {
		rc.ClientCert, rc.ClientKey, rc.RootCert = "CERT", "SECRET-KEY", "ROOT"
	}
	img := chaincode.ImageRef{Name: "reg/cc", Digest: "sha256:" + strings.Repeat("cd", 32)}
	p, err := Resolve(cfg, img, chaincode.BuildInfo{PeerAddressArg: true}, "kubecc.json", rc, "host")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPodSpecIsHardenedAndKeepsKeysOutOfEnv(t *testing.T) {
	p := params(t, true)
	name := p.NewName()
	if len(name) > 63 || !strings.HasPrefix(name, "cc-my-cc-1-0-") {
		t.Fatalf("name %q", name)
	}
	sec := p.Secret(name)
	if sec == nil || string(sec.Data["client.key"]) != "SECRET-KEY" || string(sec.Data["client.key.b64"]) != "U0VDUkVULUtFWQ==" {
		t.Fatalf("secret %+v", sec)
	}
	pod := p.Pod(name, name, nil)
	c := pod.Spec.Containers[0]
	if c.Image != "reg/cc@sha256:"+strings.Repeat("cd", 32) {
		t.Errorf("image %s", c.Image)
	}
	if len(c.Args) != 1 || c.Args[0] != "-peer.address=peer0:7052" {
		t.Errorf("args %v", c.Args)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if strings.Contains(e.Value, "SECRET-KEY") || strings.Contains(e.Value, "CERT") && e.Name != "CORE_TLS_CLIENT_CERT_FILE" && e.Name != "CORE_TLS_CLIENT_CERT_PATH" && e.Name != "CORE_PEER_TLS_ROOTCERT_FILE" {
			t.Errorf("TLS material in env %s", e.Name)
		}
	}
	if env["CORE_PEER_TLS_ENABLED"] != "true" || env["CORE_TLS_CLIENT_KEY_PATH"] != TLSDir+"/client.key.b64" || env["CORE_CHAINCODE_ID_NAME"] != p.ChaincodeID || env["CORE_PEER_LOCALMSPID"] != "Org1MSP" {
		t.Errorf("env %v", env)
	}
	for k, v := range pod.Labels {
		if strings.Contains(v, "SECRET") || len(v) > 63 {
			t.Errorf("label %s=%s", k, v)
		}
	}
	if pod.Labels[LabelManagedBy] != "kubecc" || pod.Labels[LabelChaincode] != "My_CC-1.0" || pod.Annotations[AnnotationPackageID] != p.ChaincodeID {
		t.Errorf("labels %v annotations %v", pod.Labels, pod.Annotations)
	}
	sc, psc := c.SecurityContext, pod.Spec.SecurityContext
	if !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || sc.Capabilities.Drop[0] != "ALL" || !*psc.RunAsNonRoot || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("security context not hardened")
	}
	if *pod.Spec.AutomountServiceAccountToken || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Error("token mounted or restart policy wrong")
	}
}

func TestTLSOff(t *testing.T) {
	p := params(t, false)
	if p.Secret("x") != nil {
		t.Fatal("secret without TLS")
	}
	pod := p.Pod("x", "", nil)
	for _, e := range pod.Spec.Containers[0].Env {
		if e.Name == "CORE_PEER_TLS_ENABLED" && e.Value != "false" {
			t.Fatal("TLS enabled")
		}
	}
	if len(pod.Spec.Volumes) != 1 {
		t.Fatalf("volumes %v", pod.Spec.Volumes)
	}
}

func TestPeerAddressOverride(t *testing.T) {
	p := params(t, false)
	cfg := *p.Config
	cfg.PeerAddress = "10.1.2.3:7052"
	rc := &chaincode.RunConfig{ChaincodeID: p.ChaincodeID, PeerAddress: "peer0:7052", MSPID: "Org1MSP"}
	p, err := Resolve(&cfg, p.Image, chaincode.BuildInfo{PeerAddressArg: true}, "kubecc.json", rc, "host")
	if err != nil {
		t.Fatal(err)
	}
	pod := p.Pod("x", "", nil)
	if pod.Spec.Containers[0].Args[0] != "-peer.address=10.1.2.3:7052" {
		t.Fatal(pod.Spec.Containers[0].Args)
	}
}

func TestResolve(t *testing.T) {
	cfg, err := config.Load(t.TempDir(), func(k string) (string, bool) {
		switch k {
		case "KUBECC_LAUNCH":
			return "job", true
		case "KUBECC_IDLE_TIMEOUT":
			return "5s", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	rc := &chaincode.RunConfig{ChaincodeID: "cc:1234", PeerAddress: "10.0.0.1:7052", MSPID: "Org1MSP"}
	img := chaincode.ImageRef{Name: "reg/cc"}
	for _, tc := range []struct {
		name     string
		info     chaincode.BuildInfo
		mode     chaincode.LaunchMode
		idle     time.Duration
		errField string
	}{
		{name: "config default", mode: chaincode.LaunchJob, idle: 5 * time.Second},
		{name: "package chooses pod", info: chaincode.BuildInfo{Launch: chaincode.LaunchPod}, mode: chaincode.LaunchPod, idle: 5 * time.Second},
		{name: "package idle timeout", info: chaincode.BuildInfo{IdleTimeout: "0s"}, mode: chaincode.LaunchJob, idle: 0},
		{name: "bad idle timeout", info: chaincode.BuildInfo{IdleTimeout: "soon"}, errField: `"idleTimeout"`},
		{name: "bad mode", info: chaincode.BuildInfo{Launch: "daemonset"}, errField: `"launch"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Resolve(cfg, img, tc.info, "out/kubecc.json", rc, "peer0")
			if tc.errField != "" {
				if err == nil || !strings.Contains(err.Error(), "out/kubecc.json") || !strings.Contains(err.Error(), tc.errField) {
					t.Fatalf("error %v, want one naming the file and field %s", err, tc.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Mode != tc.mode || p.IdleTimeout != tc.idle || p.PeerID != "peer0/10.0.0.1:7052" || p.PeerAddress != "10.0.0.1:7052" || p.TLS != nil {
				t.Fatalf("resolved %+v", p)
			}
		})
	}
}

func TestDialingLeavesTheOriginalAlone(t *testing.T) {
	p := params(t, true)
	q := p.Dialing("10.9.9.9:4000", &TLS{ClientCert: "C2", ClientKey: "K2", RootCert: "R2"})
	if p.PeerAddress != "peer0:7052" || p.TLS.ClientKey != "SECRET-KEY" {
		t.Fatalf("original changed: %+v", p)
	}
	job := q.Job("j", "j", nil)
	if got := job.Spec.Template.Spec.Containers[0].Args[0]; got != "-peer.address=10.9.9.9:4000" {
		t.Fatalf("job args %s", got)
	}
	if string(q.Secret("j").Data["client.key"]) != "K2" {
		t.Fatal("relay key not in the job's secret")
	}
}

func TestJobAndOwner(t *testing.T) {
	p := params(t, true)
	owner := &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "peer0-abc", UID: "u1"}
	job := p.Job("cc-x", "cc-x", owner)
	if *job.Spec.BackoffLimit != 0 || job.Spec.TTLSecondsAfterFinished == nil || len(job.OwnerReferences) != 1 || job.OwnerReferences[0].UID != "u1" {
		t.Fatalf("job %+v", job.Spec)
	}
	if job.Spec.Template.Labels[LabelInstance] != "cc-x" || job.Spec.Template.Name != "" {
		t.Fatalf("template meta %+v", job.Spec.Template.ObjectMeta)
	}
	if pod := p.Pod("cc-y", "", nil); pod.OwnerReferences != nil {
		t.Fatal("owner without a peer pod")
	}
}

// Labels that sanitise alike must never share or delete each other's objects.
func TestLabelsThatSanitiseAlikeStayApart(t *testing.T) {
	a, b := params(t, false), params(t, false)
	b = b.Dialing(b.PeerAddress, nil)
	b.ChaincodeID = "my.cc:" + strings.Repeat("ef", 32)
	a.ChaincodeID = "my_cc:" + strings.Repeat("ab", 32)
	na, nb := a.NewName(), b.NewName()
	if na[:len(na)-6] == nb[:len(nb)-6] {
		t.Fatalf("names %s and %s share their stem", na, nb)
	}
	podB := b.Pod(nb, "", nil)
	if a.Leftovers("x").Matches(labels.Set(podB.Labels)) {
		t.Fatal("a's sweep would delete b's pod")
	}
	podA := a.Pod(na, "", nil)
	if !a.Leftovers("other").Matches(labels.Set(podA.Labels)) || a.Leftovers(na).Matches(labels.Set(podA.Labels)) {
		t.Fatal("sweep must match a's earlier instances and spare the kept one")
	}
}

func TestPrepullPod(t *testing.T) {
	p := params(t, true)
	pod := PrepullPod(p.Config, p.Image, "node1")
	c := pod.Spec.Containers[0]
	if pod.Spec.NodeName != "node1" || c.Image != p.Image.Ref() || len(c.Env) != 0 || len(pod.Spec.Volumes) != 1 || c.Args[0] != "-h" {
		t.Fatalf("prepull pod %+v", pod.Spec)
	}
	if !PrepullSelector(p.Image).AsSelector().Matches(labels.Set(pod.Labels)) || *pod.Spec.AutomountServiceAccountToken {
		t.Fatalf("labels %v", pod.Labels)
	}
}

func TestBuildJobIsHardenedAndCarriesNoSecretInEnv(t *testing.T) {
	p := params(t, false)
	cfg := *p.Config
	cfg.KubeccImage = "reg/kubecc@sha256:" + strings.Repeat("1", 64)
	cfg.BuildPushSecret = "push-creds"
	cfg.BuildCache = "go-cache"
	cfg.BuildTimeout.Duration = 90 * time.Second
	job := BuildJob{Name: "kubecc-build-x", Image: "reg/build@sha256:" + strings.Repeat("2", 64), Kubecc: "/opt/kubecc/bin/kubecc", Arch: "arm64",
		Args: []string{"build-source", "--source", "s"},
		Env:  map[string]string{"KUBECC_REGISTRY": "reg/kubecc", "GOPROXY": "https://proxy"}}.Job(&cfg)
	spec := job.Spec.Template.Spec
	c := spec.Containers[0]
	if len(spec.InitContainers) != 0 || c.Command[0] != "/opt/kubecc/bin/kubecc" || c.Command[1] != "build-source" || spec.NodeSelector[corev1.LabelArchStable] != "arm64" {
		t.Fatalf("build image job: %+v %+v %v", spec.InitContainers, c, spec.NodeSelector)
	}
	if *spec.AutomountServiceAccountToken || !*spec.SecurityContext.RunAsNonRoot || !*c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.Capabilities.Drop[0] != "ALL" {
		t.Fatal("build pod not hardened")
	}
	if *spec.ActiveDeadlineSeconds != 90 || *job.Spec.BackoffLimit != 0 || spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatalf("deadline %d backoff %d", *spec.ActiveDeadlineSeconds, *job.Spec.BackoffLimit)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			t.Errorf("env %s comes from elsewhere", e.Name)
		}
	}
	if env["DOCKER_CONFIG"] != "/kubecc-auth" || env["GOPROXY"] != "https://proxy" || env["GOMODCACHE"] != "/cache/go-mod" {
		t.Fatalf("env %v", env)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	if s := vols["auth"].Secret; s == nil || s.SecretName != "push-creds" || s.Items[0].Key != corev1.DockerConfigJsonKey {
		t.Fatalf("auth volume %+v", vols["auth"])
	}
	if pvc := vols["cache"].PersistentVolumeClaim; pvc == nil || pvc.ClaimName != "go-cache" {
		t.Fatalf("cache volume %+v", vols["cache"])
	}
	if job.Labels[LabelInstance] != "kubecc-build-x" || job.Spec.Template.Labels[LabelManagedBy] != ManagedBy {
		t.Fatalf("labels %v", job.Labels)
	}
}

// A toolchain kubecc could not be layered onto: an init container copies kubecc in.
func TestBuildJobCopiesKubeccInWhenTheImageLacksIt(t *testing.T) {
	p := params(t, false)
	cfg := *p.Config
	cfg.BuildNodeSelector = map[string]string{"pool": "builds"}
	job := BuildJob{Name: "kubecc-build-x", Image: "golang:1.26", CopyKubeccFrom: "reg/kubecc:v1", Kubecc: "/ignored", Args: []string{"build-source"}}.Job(&cfg)
	spec := job.Spec.Template.Spec
	c := spec.Containers[0]
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].Image != "reg/kubecc:v1" || c.Image != "golang:1.26" || c.Command[0] != "/kubecc/bin/kubecc" {
		t.Fatalf("containers %+v %+v", spec.InitContainers, c)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.Name == "kubecc" && m.MountPath == "/kubecc" && m.ReadOnly)
	}
	if !mounted || len(spec.NodeSelector) != 1 || spec.NodeSelector["pool"] != "builds" {
		t.Fatalf("mounts %+v, node selector %v", c.VolumeMounts, spec.NodeSelector)
	}
}

func TestPeerIDFollowsThePeerPod(t *testing.T) {
	p := params(t, false)
	cfg := *p.Config
	cfg.PeerPod = "peer0-7d9f-abcde"
	rc := &chaincode.RunConfig{ChaincodeID: p.ChaincodeID, PeerAddress: "10.0.0.1:7052", MSPID: "Org1MSP"}
	q, err := Resolve(&cfg, p.Image, chaincode.BuildInfo{}, "kubecc.json", rc, "node-host")
	if err != nil || q.PeerID != "peer0-7d9f-abcde/10.0.0.1:7052" {
		t.Fatalf("peer ID %q (%v): a new peer Pod must be a new peer", q.PeerID, err)
	}
}
