package kube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubecc/kubecc/pkg/config"
)

// Connect connects to the cluster named by the config: a kubeconfig file, else the
// in-cluster service account.
func Connect(cfg *config.Config) (Client, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
	} else {
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no kubeconfig set (config key kubeconfig, env KUBECONFIG) and not in a cluster: %w", err)
		}
	}
	// One run process talks to the API server in short bursts: start-up, watch, logs,
	// clean-up. Client-side throttling would only add latency to a launch.
	rc.QPS, rc.Burst = 50, 100
	rc.UserAgent = "kubecc"
	return New(rc)
}
