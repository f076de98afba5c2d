package chaincode

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// BuildInfoFile is kubecc's own record in the build output, read back by run.
const BuildInfoFile = "kubecc.json"

// BuildInfo tells run how to start the image.
type BuildInfo struct {
	// Type is the package type (golang, kubecc, k8s).
	Type string `json:"type"`
	// PeerAddressArg: the image runs a Go shim that kubecc built, which reads the peer
	// address only from its -peer.address flag.
	PeerAddressArg bool `json:"peerAddressArg"`
	// Launch and IdleTimeout are the package's own launch choice, if it made one.
	Launch      LaunchMode `json:"launch,omitempty"`
	IdleTimeout string     `json:"idleTimeout,omitempty"`
}

// ReadBuildInfo reads dir/kubecc.json; a missing file gives the zero BuildInfo.
func ReadBuildInfo(dir string) (BuildInfo, error) {
	var bi BuildInfo
	path := filepath.Join(dir, BuildInfoFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return bi, nil
	}
	if err != nil {
		return bi, fmt.Errorf("%s: %w", path, err)
	}
	if err := json.Unmarshal(data, &bi); err != nil {
		return bi, fmt.Errorf("%s: not valid JSON: %w", path, err)
	}
	return bi, nil
}

// Marshal renders kubecc.json.
func (b BuildInfo) Marshal() []byte {
	data, _ := json.MarshalIndent(b, "", "  ")
	return append(data, '\n')
}
