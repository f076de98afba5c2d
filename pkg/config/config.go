// Package config loads the builder's settings: config.yaml beside bin/, then
// KUBECC_* environment overrides (operators list those in the peer's
// propagateEnvironment). Unknown keys and bad values are errors naming the key.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/strictyaml"
)

// FileName is the name of the builder's config file, beside bin/.
const FileName = "config.yaml"

// Config is everything an operator can set. The JSON names are the keys of config.yaml.
type Config struct {
	// Registry is the repository prefix images are pushed under, e.g. 127.0.0.1:5000/kubecc.
	Registry string `json:"registry,omitempty"`
	// RegistryInsecure talks plain HTTP to Registry's host.
	RegistryInsecure bool `json:"registryInsecure,omitempty"`
	// InsecureRegistries lists more hosts (host[:port]) reached over plain HTTP.
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
	// AllowedRegistries, when set, are the only registry hosts (host[:port]) an image
	// package may name; Registry's host is always allowed.
	AllowedRegistries []string `json:"allowedRegistries,omitempty"`
	// BaseImage is the base for Go images; empty means kubecc's built-in minimal base.
	BaseImage string `json:"baseImage,omitempty"`
	// NodeBaseImage is the base for Node.js images: it must hold node (and /bin/sh,
	// which starts the chaincode). Default DefaultNodeBaseImage.
	NodeBaseImage string `json:"nodeBaseImage,omitempty"`
	// GOARCH of the chaincode binaries (and image platform). Default amd64.
	GOARCH string `json:"goarch,omitempty"`
	// Kubeconfig path; empty means in-cluster config.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Namespace for chaincode Pods, Jobs and Secrets.
	Namespace string `json:"namespace,omitempty"`
	// PeerAddress is the host:port pods dial instead of chaincode.json's peer_address.
	PeerAddress string `json:"peerAddress,omitempty"`
	// PeerID names this peer in labels and leftover clean-up; default: host name + peer address.
	PeerID string `json:"peerID,omitempty"`
	// PeerPod is the peer's own Pod (same namespace) that chaincode Pods are owned by; default: the host name when in-cluster.
	PeerPod string `json:"peerPod,omitempty"`
	// Resources of the chaincode container.
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// NodeSelector, Tolerations, ImagePullSecrets and ServiceAccount go into the Pod spec as they are.
	NodeSelector     map[string]string   `json:"nodeSelector,omitempty"`
	Tolerations      []corev1.Toleration `json:"tolerations,omitempty"`
	ImagePullSecrets []string            `json:"imagePullSecrets,omitempty"`
	ServiceAccount   string              `json:"serviceAccount,omitempty"`
	// RunAsUser/FSGroup of the chaincode; images kubecc builds run as 10001.
	RunAsUser int64 `json:"runAsUser,omitempty"`
	FSGroup   int64 `json:"fsGroup,omitempty"`
	// Launch is the default launch mode (pod or job) for packages that do not choose.
	Launch chaincode.LaunchMode `json:"launch,omitempty"`
	// IdleTimeout is the default idle timeout of job-mode chaincode.
	IdleTimeout Duration `json:"idleTimeout,omitempty"`
	// RelayAddress is host:port the job-mode relay listens on and advertises to pods.
	RelayAddress string `json:"relayAddress,omitempty"`
	// Prepull makes the build hook get a new image onto the nodes that may run it.
	Prepull bool `json:"prepull,omitempty"`
	// RelayLinger is how long a job-mode relay stays registered with the peer after it
	// scaled the chaincode to zero (default 2m); then run exits.
	RelayLinger Duration `json:"relayLinger,omitempty"`
	// LaunchTimeout bounds how long run waits for the container to start.
	LaunchTimeout Duration `json:"launchTimeout,omitempty"`

	// BuildIn says where source packages compile: local, cluster or auto (local when
	// the language's toolchain is on PATH, else in a Kubernetes Job).
	BuildIn string `json:"buildIn,omitempty"`
	// BuildImages are the toolchain images of build Jobs, per language.
	BuildImages BuildImages `json:"buildImages,omitempty"`
	// KubeccImage is kubecc's own image: build Jobs get kubecc from it.
	KubeccImage string `json:"kubeccImage,omitempty"`
	// BuildPushSecret names a Secret of type kubernetes.io/dockerconfigjson that build
	// Jobs push with (mounted read-only; never in env or args).
	BuildPushSecret string `json:"buildPushSecret,omitempty"`
	// BuildEnv are the download settings build Jobs get (GOPROXY, NO_PROXY, ...): the
	// operator's, never the peer's environment.
	BuildEnv map[string]string `json:"buildEnv,omitempty"`
	// BuildCache names a PersistentVolumeClaim that keeps Go's module and build caches and npm's cache
	// across build Jobs; empty: every Job starts cold.
	BuildCache string `json:"buildCache,omitempty"`
	// BuildTimeout bounds one build Job (default 10m).
	BuildTimeout Duration `json:"buildTimeout,omitempty"`
	// BuildResources, BuildNodeSelector and BuildTolerations place build Jobs (builds
	// may want bigger nodes than chaincode).
	BuildResources    corev1.ResourceRequirements `json:"buildResources,omitempty"`
	BuildNodeSelector map[string]string           `json:"buildNodeSelector,omitempty"`
	BuildTolerations  []corev1.Toleration         `json:"buildTolerations,omitempty"`
}

// BuildImages are toolchain images by language.
type BuildImages struct {
	Golang string `json:"golang,omitempty"`
	Node   string `json:"node,omitempty"`
}

// Where builds run.
const (
	BuildLocal   = "local"
	BuildCluster = "cluster"
	BuildAuto    = "auto"
)

// DefaultGoBuildImage is the official Go image of the toolchain kubecc is tested with.
const DefaultGoBuildImage = "docker.io/library/golang:1.26"

// DefaultNodeBaseImage is the base of Node.js chaincode images: the official Node.js
// image of the 22 LTS line (maintained until April 2027), Debian bookworm, slim. Why
// this one: fabric-shim 2.5.5 to 2.5.8 want Node >= 18 and Fabric's own Node runtime
// image for 2.5.8 (fabric-nodeenv) is Node 22, so this is the line the shim is tested
// on; glibc (not Alpine's musl) so that JavaScript behaves as on the usual build host;
// slim: no compilers, which chaincode images never need (kubecc refuses native addons);
// and it has /bin/sh, which kubecc's start-up line needs. A tag, not a digest: the
// build resolves it to a digest, which enters the content hash.
const DefaultNodeBaseImage = "docker.io/library/node:22-bookworm-slim"

// BuildEnvKeys are the variables buildEnv may set: download and proxy settings only.
func BuildEnvKeys() []string {
	return []string{"GOPROXY", "GONOPROXY", "GOPRIVATE", "GONOSUMDB", "GONOSUMCHECK", "GOSUMDB", "GOINSECURE", "GOFLAGS",
		"NPM_CONFIG_REGISTRY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
}

// Duration is a time.Duration written as "30s" in YAML and env.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string such as "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "30s" (or a number of seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("want a duration such as \"30s\"")
		}
		d.Duration = time.Duration(n * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\": %q", s)
	}
	d.Duration = v
	return nil
}

// Defaults are applied after the file and the environment.
func (c *Config) setDefaults() {
	if c.GOARCH == "" {
		c.GOARCH = "amd64"
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.RunAsUser == 0 {
		c.RunAsUser = 10001
	}
	if c.FSGroup == 0 {
		c.FSGroup = c.RunAsUser
	}
	if c.Launch == "" {
		c.Launch = chaincode.LaunchPod
	}
	if c.LaunchTimeout.Duration == 0 {
		c.LaunchTimeout.Duration = 5 * time.Minute
	}
	if c.BuildIn == "" {
		c.BuildIn = BuildAuto
	}
	if c.NodeBaseImage == "" {
		c.NodeBaseImage = DefaultNodeBaseImage
	}
	if c.BuildImages.Golang == "" {
		c.BuildImages.Golang = DefaultGoBuildImage
	}
	if c.BuildTimeout.Duration == 0 {
		c.BuildTimeout.Duration = 10 * time.Minute
	}
}

// Load reads builderDir/config.yaml (missing is fine; KUBECC_CONFIG names another
// file; an empty builderDir means no builder folder) and applies the environment
// given as a lookup function.
func Load(builderDir string, lookup func(string) (string, bool)) (*Config, error) {
	c := &Config{}
	path := ""
	if builderDir != "" {
		path = filepath.Join(builderDir, FileName)
	}
	if p, ok := lookup("KUBECC_CONFIG"); ok && p != "" {
		path = p
	}
	var data []byte
	err := os.ErrNotExist
	if path != "" {
		data, err = os.ReadFile(path)
	}
	switch {
	case err == nil:
		if err := strictyaml.Unmarshal(path, data, c); err != nil {
			return nil, err
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := applyEnv(c, lookup); err != nil {
		return nil, err
	}
	c.setDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// FromEnv loads the config of the builder whose bin/ holds the running executable.
func FromEnv() (*Config, error) {
	return Load(BuilderDir(), os.LookupEnv)
}

// BuilderDir is the folder holding bin/. The peer calls hooks by their full path
// (<path>/bin/run), so argv[0] names it even when bin/ is a link elsewhere.
func BuilderDir() string {
	exe := os.Args[0]
	if !filepath.IsAbs(exe) {
		if p, err := os.Executable(); err == nil {
			exe = p
		}
	}
	return filepath.Dir(filepath.Dir(exe))
}

func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	env := func(key string) (string, bool) {
		v, ok := lookup(key)
		return v, ok && v != ""
	}
	for key, dst := range map[string]*string{
		"KUBECC_REGISTRY":           &c.Registry,
		"KUBECC_BASE_IMAGE":         &c.BaseImage,
		"KUBECC_NODE_BASE_IMAGE":    &c.NodeBaseImage,
		"KUBECC_GOARCH":             &c.GOARCH,
		"KUBECONFIG":                &c.Kubeconfig,
		"KUBECC_NAMESPACE":          &c.Namespace,
		"KUBECC_PEER_ADDRESS":       &c.PeerAddress,
		"KUBECC_PEER_ID":            &c.PeerID,
		"KUBECC_PEER_POD":           &c.PeerPod,
		"KUBECC_SERVICE_ACCOUNT":    &c.ServiceAccount,
		"KUBECC_RELAY_ADDRESS":      &c.RelayAddress,
		"KUBECC_BUILD_IN":           &c.BuildIn,
		"KUBECC_BUILD_IMAGE_GOLANG": &c.BuildImages.Golang,
		"KUBECC_BUILD_IMAGE_NODE":   &c.BuildImages.Node,
		"KUBECC_IMAGE":              &c.KubeccImage,
		"KUBECC_BUILD_PUSH_SECRET":  &c.BuildPushSecret,
		"KUBECC_BUILD_CACHE":        &c.BuildCache,
	} {
		if v, ok := env(key); ok {
			*dst = v
		}
	}
	if v, ok := env("KUBECC_LAUNCH"); ok {
		c.Launch = chaincode.LaunchMode(v)
	}
	for key, dst := range map[string]*[]string{
		"KUBECC_INSECURE_REGISTRIES": &c.InsecureRegistries,
		"KUBECC_ALLOWED_REGISTRIES":  &c.AllowedRegistries,
		"KUBECC_IMAGE_PULL_SECRETS":  &c.ImagePullSecrets,
	} {
		if v, ok := env(key); ok {
			*dst = splitList(v)
		}
	}
	for key, dst := range map[string]*map[string]string{
		"KUBECC_NODE_SELECTOR":       &c.NodeSelector,
		"KUBECC_BUILD_NODE_SELECTOR": &c.BuildNodeSelector,
		"KUBECC_BUILD_ENV":           &c.BuildEnv,
	} {
		if v, ok := env(key); ok {
			m, err := parsePairs(key, v)
			if err != nil {
				return err
			}
			*dst = m
		}
	}
	return applyTyped(c, env)
}

// applyTyped applies the variables whose values are parsed: booleans, YAML and durations.
func applyTyped(c *Config, env func(string) (string, bool)) error {
	for key, dst := range map[string]*bool{
		"KUBECC_REGISTRY_INSECURE": &c.RegistryInsecure,
		"KUBECC_PREPULL":           &c.Prepull,
	} {
		if v, ok := env(key); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("env %s: want true or false, got %q", key, v)
			}
			*dst = b
		}
	}
	for key, dst := range map[string]any{
		"KUBECC_RESOURCES":         &c.Resources,
		"KUBECC_TOLERATIONS":       &c.Tolerations,
		"KUBECC_BUILD_RESOURCES":   &c.BuildResources,
		"KUBECC_BUILD_TOLERATIONS": &c.BuildTolerations,
	} {
		if v, ok := env(key); ok {
			if err := yaml.UnmarshalStrict([]byte(v), dst); err != nil {
				return fmt.Errorf("env %s: %w", key, err)
			}
		}
	}
	for key, dst := range map[string]*Duration{
		"KUBECC_IDLE_TIMEOUT":   &c.IdleTimeout,
		"KUBECC_LAUNCH_TIMEOUT": &c.LaunchTimeout,
		"KUBECC_RELAY_LINGER":   &c.RelayLinger,
		"KUBECC_BUILD_TIMEOUT":  &c.BuildTimeout,
	} {
		if v, ok := env(key); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("env %s: want a duration such as 30s, got %q", key, v)
			}
			dst.Duration = d
		}
	}
	return nil
}

// parsePairs reads key=value[,key=value]. In KUBECC_BUILD_ENV a value may hold
// commas itself (GOPROXY=https://proxy.example,direct; NO_PROXY lists): a part that
// does not start with a variable name and "=" continues the value before it.
func parsePairs(key, v string) (map[string]string, error) {
	m := map[string]string{}
	last := ""
	for _, kv := range splitList(v) {
		k, val, found := strings.Cut(kv, "=")
		if key == "KUBECC_BUILD_ENV" && last != "" && (!found || !envName.MatchString(k)) {
			m[last] += "," + kv
			continue
		}
		if !found || k == "" {
			return nil, fmt.Errorf("env %s: want key=value[,key=value], got %q", key, kv)
		}
		m[k], last = val, k
	}
	return m, nil
}

var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

var (
	dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// registryHost is host[:port] (an IPv6 address in brackets): no scheme, no path.
	registryHost = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$|^\[[0-9a-fA-F:.]+\](:[0-9]{1,5})?$`)
	hostPort     = regexp.MustCompile(`^[^\s:/]+:[0-9]{1,5}$|^\[[0-9a-fA-F:.]+\]:[0-9]{1,5}$`)
)

func knownGOARCH(a string) bool {
	switch a {
	case "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64":
		return true
	}
	return false
}

func (c *Config) validate() error {
	if !dns1123.MatchString(c.Namespace) || len(c.Namespace) > 63 {
		return fmt.Errorf("config key namespace: %q is not a valid namespace name", c.Namespace)
	}
	if !knownGOARCH(c.GOARCH) {
		return fmt.Errorf("config key goarch: unsupported GOARCH %q", c.GOARCH)
	}
	if c.PeerAddress != "" && !hostPort.MatchString(c.PeerAddress) {
		return fmt.Errorf("config key peerAddress: want host:port, got %q", c.PeerAddress)
	}
	if c.RelayAddress != "" && !hostPort.MatchString(c.RelayAddress) {
		return fmt.Errorf("config key relayAddress: want host:port, got %q", c.RelayAddress)
	}
	if c.Registry != "" && (strings.Contains(c.Registry, "://") || strings.HasSuffix(c.Registry, "/") || strings.ContainsAny(c.Registry, " \t@")) {
		return fmt.Errorf("config key registry: want a repository prefix such as 127.0.0.1:5000/kubecc, got %q", c.Registry)
	}
	for _, h := range c.AllowedRegistries {
		if !registryHost.MatchString(h) {
			return fmt.Errorf("config key allowedRegistries: want registry hosts such as 127.0.0.1:5000 (no scheme, no path), got %q", h)
		}
	}
	if err := c.validateBuild(); err != nil {
		return err
	}
	if _, err := chaincode.ParseLaunchMode(string(c.Launch)); err != nil {
		return fmt.Errorf("config key launch: %w", err)
	}
	if c.IdleTimeout.Duration < 0 {
		return fmt.Errorf("config key idleTimeout: must not be negative")
	}
	if c.ServiceAccount != "" && !dns1123.MatchString(c.ServiceAccount) {
		return fmt.Errorf("config key serviceAccount: %q is not a valid name", c.ServiceAccount)
	}
	for _, s := range c.ImagePullSecrets {
		if !dns1123.MatchString(s) {
			return fmt.Errorf("config key imagePullSecrets: %q is not a valid name", s)
		}
	}
	for name, q := range c.Resources.Limits {
		if q.Cmp(resource.Quantity{}) < 0 {
			return fmt.Errorf("config key resources.limits.%s: must not be negative", name)
		}
	}
	return nil
}

// Insecure reports whether host (host[:port]) is reached over plain HTTP.
func (c *Config) Insecure(host string) bool {
	if c.RegistryInsecure && c.Registry != "" {
		if regHost, _, _ := strings.Cut(c.Registry, "/"); regHost == host {
			return true
		}
	}
	for _, h := range c.InsecureRegistries {
		if h == host {
			return true
		}
	}
	return false
}

func (c *Config) validateBuild() error {
	switch c.BuildIn {
	case BuildLocal, BuildCluster, BuildAuto:
	default:
		return fmt.Errorf("config key buildIn: want local, cluster or auto, got %q", c.BuildIn)
	}
	allowed := map[string]bool{}
	for _, k := range BuildEnvKeys() {
		allowed[k] = true
	}
	for k := range c.BuildEnv {
		if !allowed[k] {
			return fmt.Errorf("config key buildEnv: %q is not a download setting (want one of %s)", k, strings.Join(BuildEnvKeys(), ", "))
		}
	}
	for key, v := range map[string]string{"buildPushSecret": c.BuildPushSecret, "buildCache": c.BuildCache} {
		if v != "" && !dns1123.MatchString(v) {
			return fmt.Errorf("config key %s: %q is not a valid name", key, v)
		}
	}
	if c.BuildTimeout.Duration < 0 {
		return fmt.Errorf("config key buildTimeout: must not be negative")
	}
	return nil
}
