// Package podspec turns a launch's resolved parameters into the Kubernetes objects
// kubecc creates: the Secret with the launch's TLS material, the chaincode Pod or
// Job, their names and labels, and the pods that pre-pull an image. Everything here
// is a pure function of its inputs: no API calls, no clock.
package podspec

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/names"
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
	LabelPrepull     = "kubecc.io/prepull"

	AnnotationPackageID = "kubecc.io/package-id"
	AnnotationPeerID    = "kubecc.io/peer-id"
	AnnotationMSPID     = "kubecc.io/mspid"

	// ContainerName is the chaincode container's name.
	ContainerName = "chaincode"
	// TLSDir is where the Secret is mounted in the container.
	TLSDir = "/etc/hyperledger/fabric/chaincode-tls"
)

// TLS is the material the chaincode presents to whatever it dials.
type TLS struct {
	ClientCert, ClientKey, RootCert string
}

// Params is everything a launch needs, resolved once by Resolve and read-only after.
type Params struct {
	// Config holds the operator's pod settings (resources, placement, user).
	Config *config.Config
	Image  chaincode.ImageRef
	// ChaincodeID is the package ID, label:hash.
	ChaincodeID string
	MSPID       string
	// PeerID names the peer in labels and the clean-up of leftovers.
	PeerID string
	Mode   chaincode.LaunchMode
	// IdleTimeout of job mode.
	IdleTimeout time.Duration
	// PeerAddress is what the chaincode dials.
	PeerAddress string
	// PeerAddressArg passes PeerAddress as the Go shim's -peer.address flag too.
	PeerAddressArg bool
	// TLS is what the chaincode presents; nil when the peer has TLS off.
	TLS *TLS
}

// Resolve merges the operator's config, the package's own choices recorded at build
// time (info, whose path is named in errors) and the peer's chaincode.json. host is
// this machine's name (the peer Pod's name in a cluster, unless config peerPod names it).
func Resolve(cfg *config.Config, img chaincode.ImageRef, info chaincode.BuildInfo, infoPath string, rc *chaincode.RunConfig, host string) (*Params, error) {
	p := &Params{
		Config:         cfg,
		Image:          img,
		ChaincodeID:    rc.ChaincodeID,
		MSPID:          rc.MSPID,
		PeerID:         cfg.PeerID,
		Mode:           cfg.Launch,
		IdleTimeout:    cfg.IdleTimeout.Duration,
		PeerAddress:    rc.PeerAddress,
		PeerAddressArg: info.PeerAddressArg,
	}
	if p.PeerID == "" {
		// The peer's Pod name when it is one (a new Pod is a new peer), else the host.
		if cfg.PeerPod != "" {
			host = cfg.PeerPod
		}
		p.PeerID = host + "/" + rc.PeerAddress
	}
	if cfg.PeerAddress != "" {
		p.PeerAddress = cfg.PeerAddress
	}
	// The package's own choice (kubecc.yaml, part of its hash) beats the builder's default.
	if info.Launch != "" {
		p.Mode = info.Launch
	}
	if p.Mode == "" {
		p.Mode = chaincode.LaunchPod
	}
	if _, err := chaincode.ParseLaunchMode(string(p.Mode)); err != nil {
		return nil, fmt.Errorf("%s: field \"launch\": %w", infoPath, err)
	}
	if info.IdleTimeout != "" {
		d, err := time.ParseDuration(info.IdleTimeout)
		if err != nil {
			return nil, fmt.Errorf("%s: field \"idleTimeout\": %w", infoPath, err)
		}
		p.IdleTimeout = d
	}
	if rc.TLS() {
		p.TLS = &TLS{ClientCert: rc.ClientCert, ClientKey: rc.ClientKey, RootCert: rc.RootCert}
	}
	return p, nil
}

// Dialing is a copy of p whose chaincode dials addr with tls instead (the serverless
// relay): the original stays as it was.
func (p *Params) Dialing(addr string, tls *TLS) *Params {
	q := *p
	q.PeerAddress, q.TLS = addr, tls
	return &q
}

// PeerHost is the host part of the address the chaincode dials.
func (p *Params) PeerHost() (string, error) {
	host, _, err := net.SplitHostPort(p.PeerAddress)
	if err != nil {
		return "", fmt.Errorf("peer address %q: %w", p.PeerAddress, err)
	}
	return host, nil
}

// Label is the label part of the package ID.
func (p *Params) Label() string { return (&chaincode.RunConfig{ChaincodeID: p.ChaincodeID}).Label() }

// Hash is the hash part of the package ID.
func (p *Params) Hash() string { return (&chaincode.RunConfig{ChaincodeID: p.ChaincodeID}).Hash() }

// Selector matches everything one peer created for one package.
func (p *Params) Selector() labels.Set {
	return labels.Set{
		LabelManagedBy:   ManagedBy,
		LabelPackageHash: names.LabelValue(p.Hash()),
		LabelPeer:        names.ShortHash(p.PeerID, 16),
	}
}

// Leftovers matches what this peer created for this package except the instance keep:
// the objects of earlier runs that a killed run could not delete.
func (p *Params) Leftovers(keep string) labels.Selector {
	sel := labels.SelectorFromSet(p.Selector())
	if r, err := labels.NewRequirement(LabelInstance, selection.NotEquals, []string{keep}); err == nil {
		sel = sel.Add(*r)
	}
	return sel
}

// NewName returns a fresh name for one instance's objects: readable, unique per
// launch (a relaunch must not collide with a pod still terminating), 63 characters
// at most so it is also a valid host name. Two labels that sanitise alike still get
// different names: the hash covers the package hash and the peer.
func (p *Params) NewName() string {
	var r [3]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("cc-%s-%s-%s", names.Slug(p.Label(), 32, "chaincode"), names.ShortHash(p.Hash()+p.PeerID, 8), hex.EncodeToString(r[:]))
}

func (p *Params) objectMeta(name string) metav1.ObjectMeta {
	l := p.Selector()
	l[LabelChaincode] = names.LabelValue(p.Label())
	l[LabelLaunch] = string(p.Mode)
	l[LabelInstance] = name
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: p.Config.Namespace,
		Labels:    l,
		Annotations: map[string]string{
			AnnotationPackageID: p.ChaincodeID,
			AnnotationPeerID:    p.PeerID,
			AnnotationMSPID:     p.MSPID,
		},
	}
}

// Secret holds the launch's TLS material; nil when the peer has TLS off. The
// chaincode gets the key as a file, never in its environment.
func (p *Params) Secret(name string) *corev1.Secret {
	if p.TLS == nil {
		return nil
	}
	t := p.TLS
	b64 := func(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }
	return &corev1.Secret{
		ObjectMeta: p.objectMeta(name),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			"client.crt":     []byte(t.ClientCert),
			"client.key":     []byte(t.ClientKey),
			"client.crt.b64": b64(t.ClientCert),
			"client.key.b64": b64(t.ClientKey),
			"root.crt":       []byte(t.RootCert),
		},
	}
}

// env is what the shims read: Go reads the TLS key and cert as base64 files
// (CORE_TLS_CLIENT_*_PATH), Node and Java as PEM files (CORE_TLS_CLIENT_*_FILE).
func (p *Params) env(tls bool) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "CORE_CHAINCODE_ID_NAME", Value: p.ChaincodeID},
		{Name: "CORE_PEER_ADDRESS", Value: p.PeerAddress},
		{Name: "CORE_PEER_LOCALMSPID", Value: p.MSPID},
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

// PodSpec is the chaincode's pod spec, shared by Pods and Jobs; secretName is the
// instance's Secret ("" with TLS off).
func (p *Params) PodSpec(secretName string) corev1.PodSpec {
	var args []string
	if p.PeerAddressArg {
		args = []string{"-peer.address=" + p.PeerAddress}
	}
	return hardened(p.Config, p.Image.Ref(), args, p.env(secretName != ""), secretName)
}

// hardened is the pod spec every kubecc container runs with: non-root, no
// capabilities, read-only root with a small /tmp, no service-account token.
func hardened(cfg *config.Config, image string, args []string, env []corev1.EnvVar, secretName string) corev1.PodSpec {
	no, yes := false, true
	tmpLimit := resource.MustParse("64Mi")
	c := corev1.Container{
		Name:            ContainerName,
		Image:           image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            args,
		Env:             env,
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
	if secretName != "" {
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

func owners(owner *metav1.OwnerReference) []metav1.OwnerReference {
	if owner == nil {
		return nil
	}
	return []metav1.OwnerReference{*owner}
}

// Pod is the resident-mode chaincode Pod, owned by owner (the peer's Pod) if set.
func (p *Params) Pod(name, secretName string, owner *metav1.OwnerReference) *corev1.Pod {
	meta := p.objectMeta(name)
	meta.OwnerReferences = owners(owner)
	return &corev1.Pod{ObjectMeta: meta, Spec: p.PodSpec(secretName)}
}

// Job is the serverless-mode chaincode: one pod, never retried (the peer relaunches on
// the next invoke), removed by the TTL controller if run could not delete it.
func (p *Params) Job(name, secretName string, owner *metav1.OwnerReference) *batchv1.Job {
	meta := p.objectMeta(name)
	meta.OwnerReferences = owners(owner)
	backoff, ttl := int32(0), int32(60)
	tmpl := p.objectMeta(name)
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

// PrepullID names the pre-pull of one image.
func PrepullID(img chaincode.ImageRef) string { return names.ShortHash(img.Ref(), 10) }

// PrepullSelector matches the pre-pull pods of one image.
func PrepullSelector(img chaincode.ImageRef) labels.Set {
	return labels.Set{LabelManagedBy: ManagedBy, LabelPrepull: PrepullID(img)}
}

// PrepullPod gets img onto node and exits at once: "-h" ends a Go chaincode's flag
// parsing. It runs hardened like the chaincode, with nothing of a launch.
func PrepullPod(cfg *config.Config, img chaincode.ImageRef, node string) *corev1.Pod {
	spec := hardened(cfg, img.Ref(), []string{"-h"}, nil, "")
	spec.NodeName = node
	spec.NodeSelector = nil
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kubecc-prepull-" + PrepullID(img) + "-", Namespace: cfg.Namespace, Labels: PrepullSelector(img)},
		Spec:       spec,
	}
}
