// Package config loads the builder's settings: config.yaml beside bin/, then
// KUBECC_* environment overrides (operators list those in the peer's
// propagateEnvironment). Unknown keys and bad values are errors naming the key.
package config

import (
	"bytes"
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
)

// FileName is the name of the builder's config file, beside bin/.
const FileName = "config.yaml"

// Launch modes.
const (
	LaunchPod = "pod"
	LaunchJob = "job"
)

// Config is everything an operator can set. The JSON names are the keys of config.yaml.
type Config struct {
	// Registry is the repository prefix images are pushed under, e.g. 127.0.0.1:5000/kubecc.
	Registry string `json:"registry,omitempty"`
	// RegistryInsecure talks plain HTTP to Registry's host.
	RegistryInsecure bool `json:"registryInsecure,omitempty"`
	// InsecureRegistries lists more hosts (host[:port]) reached over plain HTTP.
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
	// BaseImage is the base for Go images; empty means kubecc's built-in minimal base.
	BaseImage string `json:"baseImage,omitempty"`
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
	Launch string `json:"launch,omitempty"`
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
		c.Launch = LaunchPod
	}
	if c.LaunchTimeout.Duration == 0 {
		c.LaunchTimeout.Duration = 5 * time.Minute
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
		if err := parseFile(path, data, c); err != nil {
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

var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

func parseFile(path string, data []byte, c *Config) error {
	return UnmarshalStrict(path, data, c)
}

// UnmarshalStrict decodes YAML into v, refusing unknown keys; errors are one line
// that names the file (name) and the key. Empty input leaves v as it is.
func UnmarshalStrict(name string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		msg := err.Error()
		if m := unknownField.FindStringSubmatch(msg); m != nil {
			return fmt.Errorf("%s: unknown key %q", name, m[1])
		}
		return fmt.Errorf("%s: %s", name, strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: "))
	}
	return nil
}

func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	str := func(key string, dst *string) {
		if v, ok := lookup(key); ok && v != "" {
			*dst = v
		}
	}
	str("KUBECC_REGISTRY", &c.Registry)
	str("KUBECC_BASE_IMAGE", &c.BaseImage)
	str("KUBECC_GOARCH", &c.GOARCH)
	str("KUBECONFIG", &c.Kubeconfig)
	str("KUBECC_NAMESPACE", &c.Namespace)
	str("KUBECC_PEER_ADDRESS", &c.PeerAddress)
	str("KUBECC_PEER_ID", &c.PeerID)
	str("KUBECC_PEER_POD", &c.PeerPod)
	str("KUBECC_SERVICE_ACCOUNT", &c.ServiceAccount)
	str("KUBECC_LAUNCH", &c.Launch)
	str("KUBECC_RELAY_ADDRESS", &c.RelayAddress)

	if v, ok := lookup("KUBECC_REGISTRY_INSECURE"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("env KUBECC_REGISTRY_INSECURE: want true or false, got %q", v)
		}
		c.RegistryInsecure = b
	}
	if v, ok := lookup("KUBECC_PREPULL"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("env KUBECC_PREPULL: want true or false, got %q", v)
		}
		c.Prepull = b
	}
	if v, ok := lookup("KUBECC_INSECURE_REGISTRIES"); ok && v != "" {
		c.InsecureRegistries = splitList(v)
	}
	if v, ok := lookup("KUBECC_IMAGE_PULL_SECRETS"); ok && v != "" {
		c.ImagePullSecrets = splitList(v)
	}
	if v, ok := lookup("KUBECC_NODE_SELECTOR"); ok && v != "" {
		m := map[string]string{}
		for _, kv := range splitList(v) {
			k, val, found := strings.Cut(kv, "=")
			if !found || k == "" {
				return fmt.Errorf("env KUBECC_NODE_SELECTOR: want key=value[,key=value], got %q", kv)
			}
			m[k] = val
		}
		c.NodeSelector = m
	}
	for key, dst := range map[string]any{
		"KUBECC_RESOURCES":   &c.Resources,
		"KUBECC_TOLERATIONS": &c.Tolerations,
	} {
		if v, ok := lookup(key); ok && v != "" {
			if err := yaml.UnmarshalStrict([]byte(v), dst); err != nil {
				return fmt.Errorf("env %s: %v", key, err)
			}
		}
	}
	for key, dst := range map[string]*Duration{
		"KUBECC_IDLE_TIMEOUT":   &c.IdleTimeout,
		"KUBECC_LAUNCH_TIMEOUT": &c.LaunchTimeout,
		"KUBECC_RELAY_LINGER":   &c.RelayLinger,
	} {
		if v, ok := lookup(key); ok && v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("env %s: want a duration such as 30s, got %q", key, v)
			}
			dst.Duration = d
		}
	}
	return nil
}

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
	dns1123   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	hostPort  = regexp.MustCompile(`^[^\s:/]+:[0-9]{1,5}$|^\[[0-9a-fA-F:.]+\]:[0-9]{1,5}$`)
	goarchSet = map[string]bool{"amd64": true, "arm64": true, "arm": true, "386": true, "ppc64le": true, "s390x": true, "riscv64": true}
)

func (c *Config) validate() error {
	if !dns1123.MatchString(c.Namespace) || len(c.Namespace) > 63 {
		return fmt.Errorf("config key namespace: %q is not a valid namespace name", c.Namespace)
	}
	if !goarchSet[c.GOARCH] {
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
	if c.Launch != LaunchPod && c.Launch != LaunchJob {
		return fmt.Errorf("config key launch: want pod or job, got %q", c.Launch)
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
