package chaincode

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RunConfigFile is what the peer writes into run's metadata dir.
const RunConfigFile = "chaincode.json"

// RunConfig is chaincode.json. The certificates are minted per launch; they are
// empty when the peer runs with TLS off.
type RunConfig struct {
	ChaincodeID string `json:"chaincode_id"`
	PeerAddress string `json:"peer_address"`
	ClientCert  string `json:"client_cert"`
	ClientKey   string `json:"client_key"`
	RootCert    string `json:"root_cert"`
	MSPID       string `json:"mspid"`
}

// TLS reports whether the peer expects TLS from its chaincode.
func (c *RunConfig) TLS() bool {
	return c.ClientCert != "" || c.ClientKey != "" || c.RootCert != ""
}

// Label is the label part of the package ID (label:hash).
func (c *RunConfig) Label() string {
	label, _, _ := strings.Cut(c.ChaincodeID, ":")
	return label
}

// Hash is the hash part of the package ID.
func (c *RunConfig) Hash() string {
	_, hash, _ := strings.Cut(c.ChaincodeID, ":")
	return hash
}

// ReadRunConfig reads and checks dir/chaincode.json.
func ReadRunConfig(dir string) (*RunConfig, error) {
	path := filepath.Join(dir, RunConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := &RunConfig{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %w", path, err)
	}
	for field, v := range map[string]string{"chaincode_id": c.ChaincodeID, "peer_address": c.PeerAddress, "mspid": c.MSPID} {
		if v == "" {
			return nil, fmt.Errorf("%s: field %q is missing", path, field)
		}
	}
	if !strings.Contains(c.ChaincodeID, ":") {
		return nil, fmt.Errorf("%s: field \"chaincode_id\": %q is not label:hash", path, c.ChaincodeID)
	}
	if c.TLS() && (c.ClientCert == "" || c.ClientKey == "" || c.RootCert == "") {
		return nil, fmt.Errorf("%s: fields \"client_cert\", \"client_key\" and \"root_cert\" must be all set or all empty", path)
	}
	return c, nil
}
