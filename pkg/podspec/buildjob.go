package podspec

import (
	"sort"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecc/kubecc/pkg/config"
)

// Build Jobs' labels and layout.
const (
	// LabelBuild carries the content hash a build Job produces the image of.
	LabelBuild = "kubecc.io/build"
	// BuildContainerName is the build Job's container.
	BuildContainerName = "build"
	// buildKubeccDir is where the init container puts kubecc in a build Job.
	buildKubeccDir = "/kubecc"
	// buildAuthDir holds the push credentials (DOCKER_CONFIG).
	buildAuthDir  = "/kubecc-auth"
	buildCacheDir = "/cache"
)

// BuildJob is one build of a source package in the cluster.
type BuildJob struct {
	Name string
	// Image runs the build: the language's toolchain with kubecc at Kubecc.
	Image  string
	Kubecc string
	// CopyKubeccFrom, when set, is kubecc's image: an init container copies kubecc into
	// the pod first, and Image is the bare toolchain (Kubecc is then ignored).
	CopyKubeccFrom string
	// Arch, when set, is Image's only architecture: the pod goes to such a node.
	Arch string
	// Args are kubecc's arguments in the Job (its build-source command).
	Args []string
	// Env are the settings the build needs (registry, architecture, downloads).
	Env    map[string]string
	Labels map[string]string
	// Owner is the peer's Pod, if it is one: a Job outlives no peer.
	Owner *metav1.OwnerReference
}

// Job is the build Job: kubecc run in the toolchain image, hardened like chaincode
// (non-root, no capabilities, read-only root, no service-account token), with the push
// credentials as a read-only file and a deadline of cfg.BuildTimeout.
func (b BuildJob) Job(cfg *config.Config) *batchv1.Job {
	tmpLimit := resource.MustParse("4Gi")
	env := []corev1.EnvVar{
		{Name: "HOME", Value: "/tmp"},
		{Name: "TMPDIR", Value: "/tmp"},
		{Name: "GOPATH", Value: "/tmp/go"},
		{Name: "GOCACHE", Value: "/tmp/go-build"},
		{Name: "GOMODCACHE", Value: "/tmp/go-mod"},
		// Upper case, the way images set it, so that this value replaces the image's.
		{Name: "NPM_CONFIG_CACHE", Value: "/tmp/npm"},
	}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	volumes := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &tmpLimit}}}}
	if b.CopyKubeccFrom != "" {
		mounts = append(mounts, corev1.VolumeMount{Name: "kubecc", MountPath: buildKubeccDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "kubecc", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	if cfg.BuildCache != "" {
		env[3].Value, env[4].Value, env[5].Value = buildCacheDir+"/go-build", buildCacheDir+"/go-mod", buildCacheDir+"/npm"
		mounts = append(mounts, corev1.VolumeMount{Name: "cache", MountPath: buildCacheDir})
		volumes = append(volumes, corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: cfg.BuildCache}}})
	}
	if cfg.BuildPushSecret != "" {
		mode := int32(0o440)
		env = append(env, corev1.EnvVar{Name: "DOCKER_CONFIG", Value: buildAuthDir})
		mounts = append(mounts, corev1.VolumeMount{Name: "auth", MountPath: buildAuthDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: cfg.BuildPushSecret, DefaultMode: &mode,
			Items: []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: "config.json"}},
		}}})
	}
	keys := make([]string, 0, len(b.Env))
	for k := range b.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, corev1.EnvVar{Name: k, Value: b.Env[k]})
	}
	spec := b.podSpec(cfg, env, mounts, volumes)
	labels := map[string]string{LabelManagedBy: ManagedBy, LabelInstance: b.Name}
	for k, v := range b.Labels {
		labels[k] = v
	}
	meta := metav1.ObjectMeta{Name: b.Name, Namespace: cfg.Namespace, Labels: labels, OwnerReferences: owners(b.Owner)}
	tmpl := metav1.ObjectMeta{Labels: labels}
	backoff, ttl := int32(0), int32(300)
	return &batchv1.Job{
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			BackoffLimit:            &backoff,
			TTLSecondsAfterFinished: &ttl,
			Template:                corev1.PodTemplateSpec{ObjectMeta: tmpl, Spec: spec},
		},
	}
}

func (b BuildJob) podSpec(cfg *config.Config, env []corev1.EnvVar, mounts []corev1.VolumeMount, volumes []corev1.Volume) corev1.PodSpec {
	no, yes := false, true
	uid := int64(10001)
	secure := &corev1.SecurityContext{
		AllowPrivilegeEscalation: &no,
		ReadOnlyRootFilesystem:   &yes,
		RunAsNonRoot:             &yes,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	deadline := int64(cfg.BuildTimeout.Seconds())
	kubecc := b.Kubecc
	var initContainers []corev1.Container
	if b.CopyKubeccFrom != "" {
		kubecc = buildKubeccDir + "/bin/kubecc"
		initContainers = []corev1.Container{{
			Name: "kubecc", Image: b.CopyKubeccFrom, ImagePullPolicy: corev1.PullIfNotPresent,
			Args:            []string{buildKubeccDir},
			VolumeMounts:    []corev1.VolumeMount{{Name: "kubecc", MountPath: buildKubeccDir}},
			SecurityContext: secure,
		}}
	}
	spec := corev1.PodSpec{
		RestartPolicy:  corev1.RestartPolicyNever,
		InitContainers: initContainers,
		Containers: []corev1.Container{{
			Name: BuildContainerName, Image: b.Image, ImagePullPolicy: corev1.PullIfNotPresent,
			Command:                  append([]string{kubecc}, b.Args...),
			Env:                      env,
			VolumeMounts:             mounts,
			Resources:                cfg.BuildResources,
			SecurityContext:          secure,
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		}},
		Volumes:                      volumes,
		AutomountServiceAccountToken: &no,
		EnableServiceLinks:           &no,
		ActiveDeadlineSeconds:        &deadline,
		NodeSelector:                 b.nodeSelector(cfg),
		Tolerations:                  cfg.BuildTolerations,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &uid, FSGroup: &uid,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	for _, s := range cfg.ImagePullSecrets {
		spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return spec
}

// nodeSelector is the config's, plus the image's architecture unless the config
// already chooses one.
func (b BuildJob) nodeSelector(cfg *config.Config) map[string]string {
	if b.Arch == "" {
		return cfg.BuildNodeSelector
	}
	if _, ok := cfg.BuildNodeSelector[corev1.LabelArchStable]; ok {
		return cfg.BuildNodeSelector
	}
	sel := map[string]string{corev1.LabelArchStable: b.Arch}
	for k, v := range cfg.BuildNodeSelector {
		sel[k] = v
	}
	return sel
}
