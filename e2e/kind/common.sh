# Shared settings for e2e/kind/*.sh. Source it after `set -euo pipefail`; no side effects.
# shellcheck shell=bash disable=SC2034 source-path=SCRIPTDIR
# (SC2034: the variables here are used by the scripts that source this file.)
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" # FABRIC_VERSION, FABRIC_MODULE_VERSION, log, die

KIND_DIR="$REPO_ROOT/e2e/kind"
CLUSTER_NAME="${KIND_CLUSTER_NAME:-kubecc}"
KCTX="kind-$CLUSTER_NAME"
# These names are also written in manifests/ and overlay/ (which hold no placeholders):
# change both.
NS="kubecc-kind"
REG_NAME="kind-registry" # the registry container, on the "kind" Docker network
REG_PORT="5001"          # its port on the host's loopback
# kubecc's image, pushed by `make image` from a container on the "kind" network. The
# tag is the overlay's; up.sh applies it pinned by digest.
KUBECC_REPO="$REG_NAME:5000/kubecc/kubecc"
KUBECC_TAG="dev"
# The admin's CLI image (manifests/cli.yaml), built and pushed by the host's Docker.
TOOLS_IMAGE="localhost:$REG_PORT/kubecc-kind-tools:$FABRIC_VERSION"
GO_IMAGE="${GO_IMAGE:-golang:1.26}" # builds kubecc and Fabric's tools; the cli Pod's Go (as build Jobs')
GO_CACHE_VOLUME="kubecc-kind-go"    # Go's module and build caches across runs of up.sh
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

# cli_exec CMD...: runs CMD in the cli Pod, as the Org1 admin (its Deployment sets the
# peer CLI's settings and mounts the admin MSP and the CAs from the Secret fabric-admin).
cli_exec() {
	k -n "$NS" exec -i deploy/cli -c cli -- "$@"
}

# Orderer and peer flags of the peer CLI, as seen from inside the cli Pod.
ORDERER_ARGS=(-o "$ORDERER_SVC:7050" --tls --cafile /etc/hyperledger/admin/orderer-tlsca.pem)
PEER_ARGS=(--peerAddresses "$PEER_SVC:7051" --tlsRootCertFiles /etc/hyperledger/admin/peer-tlsca.pem)

# pin_kustomization DIR KUBECC_IMAGE TOOLS_IMAGE: writes into DIR a kustomization of
# overlay/ with both images pinned (name@sha256:...), kubecc's also as config.yaml's
# kubeccImage. A tag would not do: a node keeps the image it pulled first under it, and
# build Jobs pull kubecc only if not present.
pin_kustomization() {
	local dir=$1 kubecc=$2 tools=$3
	[[ $kubecc == "$KUBECC_REPO@sha256:"* ]] || die "pin_kustomization: kubecc image '$kubecc' is not $KUBECC_REPO@sha256:..."
	[[ $tools == "${TOOLS_IMAGE%:*}@sha256:"* ]] || die "pin_kustomization: tools image '$tools' is not ${TOOLS_IMAGE%:*}@sha256:..."
	mkdir -p "$dir"
	# kustomize refuses an absolute path to another kustomization: a link gives the
	# overlay a relative name wherever DIR is.
	ln -sfn "$KIND_DIR/overlay" "$dir/overlay"
	sed "s#^kubeccImage: .*#kubeccImage: $kubecc#" "$KIND_DIR/overlay/config.yaml" >"$dir/config.yaml"
	grep -qx "kubeccImage: $kubecc" "$dir/config.yaml" || die "pin_kustomization: no kubeccImage line in overlay/config.yaml"
	cat >"$dir/kustomization.yaml" <<YAML
# Written by e2e/kind/up.sh: e2e/kind/overlay with the images it pushed, by digest.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - overlay
configMapGenerator:
  - name: kubecc-config
    namespace: $NS
    behavior: replace
    files: [config.yaml]
generatorOptions:
  disableNameSuffixHash: true
images:
  - {name: $KUBECC_REPO, digest: ${kubecc#*@}}
  - {name: ${TOOLS_IMAGE%:*}, digest: ${tools#*@}}
YAML
}
