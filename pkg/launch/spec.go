// Package launch runs chaincode on Kubernetes for the run hook: the Secret holding
// the launch's TLS material, the Pod (or Job) running the image, and the watch that
// ties run's life to the chaincode's.
package launch

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
)

// Label and annotation keys on everything kubecc creates.
const (
	LabelManagedBy   = "app.kubernetes.io/managed-by"
	ManagedBy        = "kubecc"
	LabelChaincode   = "kubecc.io/chaincode"
	LabelPackageHash = "kubecc.io/package-hash"
	LabelPeer        = "kubecc.io/peer"
	LabelLaunch      = "kubecc.io/launch"
	LabelInstance    = "kubecc.io/instance"

	AnnotationPackageID = "kubecc.io/package-id"
	AnnotationPeerID    = "kubecc.io/peer-id"
	AnnotationMSPID     = "kubecc.io/mspid"

	// ContainerName is the chaincode container's name.
	ContainerName = "chaincode"
	// TLSDir is where the Secret is mounted in the container.
	TLSDir = "/etc/hyperledger/fabric/chaincode-tls"
)

// Params is everything a launch needs.
type Params struct {
	Config *config.Config
	Image  chaincode.ImageRef
	Info   chaincode.BuildInfo
	Run    *chaincode.RunConfig
	// PeerID names the peer; default: host name and peer address.
	PeerID string
	// Mode is config.LaunchPod or config.LaunchJob.
	Mode string
	// IdleTimeout of job mode.
	IdleTimeout time.Duration
	// PeerAddress is what the chaincode dials; default: Config.PeerAddress, else Run.PeerAddress.
	PeerAddress string
	// TLS material the chaincode presents; default: the peer-minted material in Run.
	ClientCert, ClientKey, RootCert string
}

// DefaultPeerID identifies the peer that runs this hook: the host (the peer's Pod
// name in a cluster) and the chaincode address it hands out.
func DefaultPeerID(cfg *config.Config, rc *chaincode.RunConfig) string {
	if cfg.PeerID != "" {
		return cfg.PeerID
	}
	host, _ := os.Hostname()
	return host + "/" + rc.PeerAddress
}

func (p *Params) peerID() string {
	if p.PeerID == "" {
		p.PeerID = DefaultPeerID(p.Config, p.Run)
	}
	return p.PeerID
}

func (p *Params) peerAddress() string {
	switch {
	case p.PeerAddress != "":
		return p.PeerAddress
	case p.Config.PeerAddress != "":
		return p.Config.PeerAddress
	}
	return p.Run.PeerAddress
}

func (p *Params) tls() (cert, key, root string) {
	if p.ClientCert != "" || p.ClientKey != "" || p.RootCert != "" {
		return p.ClientCert, p.ClientKey, p.RootCert
	}
	return p.Run.ClientCert, p.Run.ClientKey, p.Run.RootCert
}

func shortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// LabelValue makes s a valid label value (63 characters, alphanumeric at both ends).
func LabelValue(s string) string {
	v := labelUnsafe.ReplaceAllString(s, "-")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "-_.")
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// Selector matches everything one peer created for one package.
func (p *Params) Selector() labels.Set {
	return labels.Set{
		LabelManagedBy:   ManagedBy,
		LabelPackageHash: LabelValue(p.Run.Hash()),
		LabelPeer:        shortHash(p.peerID(), 16),
	}
}

// PeerSelector matches everything one peer created.
func PeerSelector(peerID string) labels.Set {
	return labels.Set{LabelManagedBy: ManagedBy, LabelPeer: shortHash(peerID, 16)}
}

// NewName returns a fresh name for this launch's objects: readable, unique per
// launch (a relaunch must not collide with a pod still terminating), 63 characters
// at most so it is also a valid host name.
func (p *Params) NewName() string {
	label := strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(p.Run.Label()), "-"), "-")
	if len(label) > 32 {
		label = strings.Trim(label[:32], "-")
	}
	if label == "" {
		label = "chaincode"
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("cc-%s-%s-%s", label, shortHash(p.Run.Hash()+p.peerID(), 8), hex.EncodeToString(r[:]))
}

func (p *Params) objectMeta(name string) metav1.ObjectMeta {
	l := p.Selector()
	l[LabelChaincode] = LabelValue(p.Run.Label())
	l[LabelLaunch] = p.mode()
	l[LabelInstance] = name
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: p.Config.Namespace,
		Labels:    l,
		Annotations: map[string]string{
			AnnotationPackageID: p.Run.ChaincodeID,
			AnnotationPeerID:    p.peerID(),
			AnnotationMSPID:     p.Run.MSPID,
		},
	}
}

func (p *Params) mode() string {
	if p.Mode == "" {
		return config.LaunchPod
	}
	return p.Mode
}

// Serverless reports whether the launch runs as Jobs behind the relay (job mode).
func (p *Params) Serverless() bool { return p.mode() == config.LaunchJob }

// Secret holds the launch's TLS material; nil when the peer has TLS off. The
// chaincode gets the key as a file, never in its environment.
func (p *Params) Secret(name string) *corev1.Secret {
	cert, key, root := p.tls()
	if cert == "" && key == "" && root == "" {
		return nil
	}
	b64 := func(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }
	return &corev1.Secret{
		ObjectMeta: p.objectMeta(name),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			"client.crt":     []byte(cert),
			"client.key":     []byte(key),
			"client.crt.b64": b64(cert),
			"client.key.b64": b64(key),
			"root.crt":       []byte(root),
		},
	}
}

// env is what the shims read: Go reads the TLS key and cert as base64 files
// (CORE_TLS_CLIENT_*_PATH), Node and Java as PEM files (CORE_TLS_CLIENT_*_FILE).
func (p *Params) env(tls bool) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "CORE_CHAINCODE_ID_NAME", Value: p.Run.ChaincodeID},
		{Name: "CORE_PEER_ADDRESS", Value: p.peerAddress()},
		{Name: "CORE_PEER_LOCALMSPID", Value: p.Run.MSPID},
		{Name: "CORE_PEER_TLS_ENABLED", Value: fmt.Sprint(tls)},
	}
	if tls {
		env = append(env,
			corev1.EnvVar{Name: "CORE_PEER_TLS_ROOTCERT_FILE", Value: TLSDir + "/root.crt"},
			corev1.EnvVar{Name: "CORE_TLS_CLIENT_KEY_FILE", Value: TLSDir + "/client.key"},
			corev1.EnvVar{Name: "CORE_TLS_CLIENT_CERT_FILE", Value: TLSDir + "/client.crt"},
			corev1.EnvVar{Name: "CORE_TLS_CLIENT_KEY_PATH", Value: TLSDir + "/client.key.b64"},
			corev1.EnvVar{Name: "CORE_TLS_CLIENT_CERT_PATH", Value: TLSDir + "/client.crt.b64"},
		)
	}
	return env
}

// PodSpec is the hardened spec of the chaincode container, shared by Pods and Jobs.
func (p *Params) PodSpec(secretName string) corev1.PodSpec {
	cfg := p.Config
	tls := secretName != ""
	var args []string
	if p.Info.PeerAddressArg {
		args = []string{"-peer.address=" + p.peerAddress()}
	}
	no, yes := false, true
	tmpLimit := resource.MustParse("64Mi")
	c := corev1.Container{
		Name:            ContainerName,
		Image:           p.Image.Ref(),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            args,
		Env:             p.env(tls),
		Resources:       cfg.Resources,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			RunAsNonRoot:             &yes,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts:             []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	volumes := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &tmpLimit}}}}
	if tls {
		mode := int32(0o440)
		volumes = append(volumes, corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secretName, DefaultMode: &mode}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "tls", MountPath: TLSDir, ReadOnly: true})
	}
	uid, fsGroup := cfg.RunAsUser, cfg.FSGroup
	grace := int64(2)
	spec := corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		Containers:                    []corev1.Container{c},
		Volumes:                       volumes,
		AutomountServiceAccountToken:  &no,
		EnableServiceLinks:            &no,
		TerminationGracePeriodSeconds: &grace,
		NodeSelector:                  cfg.NodeSelector,
		Tolerations:                   cfg.Tolerations,
		ServiceAccountName:            cfg.ServiceAccount,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   &yes,
			RunAsUser:      &uid,
			RunAsGroup:     &uid,
			FSGroup:        &fsGroup,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	for _, s := range cfg.ImagePullSecrets {
		spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return spec
}

// Pod is the resident-mode chaincode Pod.
func (p *Params) Pod(name, secretName string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: p.objectMeta(name), Spec: p.PodSpec(secretName)}
}

// Job is the serverless-mode chaincode: one pod, never retried (the peer relaunches on
// the next invoke), removed by the TTL controller if run could not delete it.
func (p *Params) Job(name, secretName string) *batchv1.Job {
	meta := p.objectMeta(name)
	backoff, ttl := int32(0), int32(60)
	tmpl := meta
	tmpl.Name, tmpl.Namespace = "", ""
	return &batchv1.Job{
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			BackoffLimit:            &backoff,
			TTLSecondsAfterFinished: &ttl,
			Template:                corev1.PodTemplateSpec{ObjectMeta: tmpl, Spec: p.PodSpec(secretName)},
		},
	}
}
