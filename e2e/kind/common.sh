# Shared settings for e2e/kind/*.sh. Source it after `set -euo pipefail`; no side effects.
# shellcheck shell=bash disable=SC2034 source-path=SCRIPTDIR
# (SC2034: the variables here are used by the scripts that source this file.)
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" # FABRIC_VERSION, FABRIC_MODULE_VERSION, log, die

KIND_DIR="$REPO_ROOT/e2e/kind"
MANIFESTS="$KIND_DIR/manifests"
CLUSTER_NAME="${KIND_CLUSTER_NAME:-kubecc}"
KCTX="kind-$CLUSTER_NAME"
# These names are also written in the manifests (which are applied verbatim): change both.
NS="kubecc-kind"
REG_NAME="kind-registry"           # the registry container, on the "kind" Docker network
REG_PORT="5001"                    # its port on the host's loopback
PEER_IMAGE="localhost:$REG_PORT/kubecc-peer:$FABRIC_VERSION"
ORDERER_IMAGE="hyperledger/fabric-orderer:$FABRIC_VERSION"
GO_IMAGE="${GO_IMAGE:-golang:1.25}" # builds the hooks and Fabric's tools; its Go runs the build hook
CHANNEL="mychannel"
PEER_SVC="peer0-org1.$NS.svc.cluster.local"
ORDERER_SVC="orderer.$NS.svc.cluster.local"

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "$c is not installed (the kind scripts need Docker, kind and kubectl)"
	done
}

k() { kubectl --context "$KCTX" "$@"; }

# peer_exec CMD...: runs CMD in the peer container as the org admin (the peer CLI's
# settings; the admin MSP and the CAs are mounted from the Secret fabric-admin).
peer_exec() {
	k -n "$NS" exec -i deploy/peer0-org1 -c peer -- env \
		CORE_PEER_MSPCONFIGPATH=/etc/hyperledger/admin/msp \
		CORE_PEER_ADDRESS=localhost:7051 \
		CORE_PEER_TLS_ROOTCERT_FILE=/etc/hyperledger/admin/peer-tlsca.pem \
		FABRIC_LOGGING_SPEC=warning \
		"$@"
}

# Orderer and peer flags of the peer CLI, as seen from inside the peer Pod.
ORDERER_ARGS=(-o "$ORDERER_SVC:7050" --tls --cafile /etc/hyperledger/admin/orderer-tlsca.pem)
PEER_ARGS=(--peerAddresses localhost:7051 --tlsRootCertFiles /etc/hyperledger/admin/peer-tlsca.pem)
