package chaincode

import "fmt"

// LaunchMode is how run starts a chaincode: the one name for it in config.yaml,
// kubecc.yaml, build output and labels.
type LaunchMode string

// The launch modes.
const (
	// LaunchPod is resident chaincode: one Pod as long as the peer wants it.
	LaunchPod LaunchMode = "pod"
	// LaunchJob is serverless chaincode: Jobs started on demand behind the relay.
	LaunchJob LaunchMode = "job"
)

// ParseLaunchMode accepts "pod" and "job"; the empty string is the zero mode.
func ParseLaunchMode(s string) (LaunchMode, error) {
	switch m := LaunchMode(s); m {
	case "", LaunchPod, LaunchJob:
		return m, nil
	}
	return "", fmt.Errorf("want pod or job, got %q", s)
}

// Serverless reports whether the mode runs the chaincode as Jobs behind the relay.
func (m LaunchMode) Serverless() bool { return m == LaunchJob }
