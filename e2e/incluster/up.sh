#!/usr/bin/env bash
# Brings up a Fabric network *inside* the running harness cluster, in namespace
# fabric-incluster: one orderer and one peer as Deployments, from the static images
# images.sh builds (no shell, no Go, no kubecc in them), with kubecc added to the peer
# only through the install kit (deploy/base + deploy/peer, applied by ./overlay with
# `kubectl apply -k`). Crypto from cryptogen goes into Secrets; ledgers live in hostPath
# folders under $KUBECC_E2E_ROOT/incluster (they survive new Pods); channel "incluster"
# is joined by the orderer (osnadmin) and the peer (peer CLI as the org admin), both
# from the host. Writes $KUBECC_E2E_ROOT/incluster/env for the tests (TestInCluster).
#
# Needs the cluster and registry of e2e/up.sh (or e2e/cluster/up.sh); does not touch the
# host-process Fabric network. Idempotent: a second run re-applies (a changed kubecc
# image rolls the peer) and only joins what is not joined yet.
#   KUBECC_IMAGE=name@digest  use this kubecc image instead of running `make image`
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# Only the default Fabric release runs in the cluster: its images come from the module
# proxy, whatever release KUBECC_FABRIC_VERSION gives the host network.
export KUBECC_FABRIC_VERSION="$FABRIC_DEFAULT_VERSION" KUBECC_FABRIC_HOME=
fabric_select "$FABRIC_DEFAULT_VERSION"

NS=fabric-incluster
CHANNEL=incluster
STATE="$KUBECC_E2E_ROOT/incluster"
ORGS="$STATE/organizations"
FABRIC_BIN="$FABRIC_HOME/bin"
# Host ports (hostNetwork; the host-process harness uses 7050-7053, 8443 and 9443).
ORDERER_PORT=8050
ORDERER_ADMIN_PORT=8053
ORDERER_OPS_PORT=9450
PEER_PORT=8051
PEER_CC_PORT=8052
PEER_OPS_PORT=9451
ORDERER_DIR="$ORGS/ordererOrganizations/example.com/orderers/orderer.example.com"
ORDERER_TLSCA="$ORGS/ordererOrganizations/example.com/tlsca/tlsca.example.com-cert.pem"
PEER_DIR="$ORGS/peerOrganizations/org1.example.com/peers/peer0.org1.example.com"
PEER_TLSCA="$ORGS/peerOrganizations/org1.example.com/tlsca/tlsca.org1.example.com-cert.pem"
ADMIN_MSP="$ORGS/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp"
BLOCK="$STATE/$CHANNEL.block"

t0=$SECONDS
step() { log "incluster: $* (+$((SECONDS - t0))s)"; }

[ -f "$KUBECC_E2E_ROOT/cluster/env" ] || die "no harness cluster: run e2e/up.sh (or e2e/cluster/up.sh) first"
# shellcheck source=/dev/null
. "$KUBECC_E2E_ROOT/cluster/env"
k() { "$KUBECTL" "$@"; }
k get --raw /readyz >/dev/null 2>&1 || die "the harness cluster does not answer: run e2e/up.sh first"
NODE_IP=$(node_ip)
[ -n "$NODE_IP" ] || die "no non-loopback IPv4 address"
for p in "$ORDERER_PORT" "$ORDERER_ADMIN_PORT" "$ORDERER_OPS_PORT" "$PEER_PORT" "$PEER_CC_PORT" "$PEER_OPS_PORT"; do
	# Taken by something else than our own Pods (which may already run).
	if ss -Hltnp "sport = :$p" | grep -q . && ! k -n "$NS" get deploy orderer peer0-org1 >/dev/null 2>&1; then
		die "port $p is in use: $(ss -Hltnp "sport = :$p" | head -n1)"
	fi
done

# ---- binaries and images ----
bash "$REPO_ROOT/e2e/fabric/install.sh" # cryptogen, configtxgen, osnadmin, the peer CLI (cached)
export PATH="$FABRIC_BIN:$PATH"
step "static Fabric images"
mapfile -t fabric_refs < <(bash "$REPO_ROOT/e2e/incluster/images.sh" | tail -n2)
PEER_IMAGE=${fabric_refs[0]}
ORDERER_IMAGE=${fabric_refs[1]}
[[ $PEER_IMAGE == */peer@sha256:* && $ORDERER_IMAGE == */orderer@sha256:* ]] || die "images.sh printed '$PEER_IMAGE' '$ORDERER_IMAGE'"
# shellcheck source=/dev/null
[ -f "$KUBECC_E2E_ROOT/builds.env" ] && . "$KUBECC_E2E_ROOT/builds.env"
if [ -z "${KUBECC_IMAGE:-}" ]; then
	step "kubecc's own image (make image)"
	KUBECC_IMAGE=$(make --no-print-directory -C "$REPO_ROOT" image | tail -n1)
fi
[[ $KUBECC_IMAGE == *@sha256:* ]] || die "make image printed '$KUBECC_IMAGE', not name@digest"
step "images: $PEER_IMAGE $ORDERER_IMAGE $KUBECC_IMAGE"

# ---- crypto material and genesis block (kept while the node IP stays) ----
mkdir -p "$STATE"
if [ "$(cat "$STATE/crypto.stamp" 2>/dev/null)" != "v1 $NODE_IP" ] || [ ! -s "$BLOCK" ]; then
	if k get namespace "$NS" >/dev/null 2>&1 || [ -e "$STATE/peer-data" ]; then
		step "crypto material missing or made for another address: recreating the network"
		bash "$REPO_ROOT/e2e/incluster/down.sh"
		mkdir -p "$STATE"
	fi
	step "cryptogen and configtxgen"
	rm -rf "$ORGS" "$STATE/configtx"
	cat >"$STATE/crypto-config.yaml" <<YAML
OrdererOrgs:
  - Name: Orderer
    Domain: example.com
    EnableNodeOUs: true
    Specs:
      - Hostname: orderer
        SANS: [localhost, 127.0.0.1, "$NODE_IP"]
PeerOrgs:
  - Name: Org1
    Domain: org1.example.com
    EnableNodeOUs: true
    Specs:
      - Hostname: peer0
        SANS: [localhost, 127.0.0.1, "$NODE_IP"]
    Users:
      Count: 1
YAML
	cryptogen generate --config="$STATE/crypto-config.yaml" --output="$ORGS" >/dev/null
	mkdir -p "$STATE/configtx"
	cat >"$STATE/configtx/configtx.yaml" <<YAML
Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: OrdererMSP
    MSPDir: $ORGS/ordererOrganizations/example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
    OrdererEndpoints:
      - $NODE_IP:$ORDERER_PORT
  - &Org1
    Name: Org1MSP
    ID: Org1MSP
    MSPDir: $ORGS/peerOrganizations/org1.example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')"}
      Writers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.client')"}
      Admins: {Type: Signature, Rule: "OR('Org1MSP.admin')"}
      Endorsement: {Type: Signature, Rule: "OR('Org1MSP.peer')"}

Capabilities:
  Channel: &ChannelCapabilities {V3_0: true}
  Orderer: &OrdererCapabilities {V2_0: true}
  Application: &ApplicationCapabilities {V2_5: true}

Application: &ApplicationDefaults
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    LifecycleEndorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
    Endorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
  Capabilities: *ApplicationCapabilities

Orderer: &OrdererDefaults
  OrdererType: etcdraft
  BatchTimeout: 100ms
  BatchSize:
    MaxMessageCount: 100
    AbsoluteMaxBytes: 99 MB
    PreferredMaxBytes: 2 MB
  EtcdRaft:
    Consenters:
      - Host: $NODE_IP
        Port: $ORDERER_PORT
        ClientTLSCert: $ORDERER_DIR/tls/server.crt
        ServerTLSCert: $ORDERER_DIR/tls/server.crt
    Options:
      TickInterval: 100ms
      ElectionTick: 10
      HeartbeatTick: 1
      MaxInflightBlocks: 5
      SnapshotIntervalSize: 16 MB
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}

Channel: &ChannelDefaults
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities: *ChannelCapabilities

Profiles:
  OneOrgChannel:
    <<: *ChannelDefaults
    Orderer:
      <<: *OrdererDefaults
      Organizations: [*OrdererOrg]
      Capabilities: *OrdererCapabilities
    Application:
      <<: *ApplicationDefaults
      Organizations: [*Org1]
      Capabilities: *ApplicationCapabilities
YAML
	configtxgen -configPath "$STATE/configtx" -profile OneOrgChannel -channelID "$CHANNEL" \
		-outputBlock "$BLOCK.new" 2>"$STATE/configtxgen.log"
	mv -f "$BLOCK.new" "$BLOCK"
	echo "v1 $NODE_IP" >"$STATE/crypto.stamp"
fi

# ---- ledgers: hostPath folders owned by the images' user ----
mkdir -p "$STATE/peer-data" "$STATE/orderer-data"
chown 1000:1000 "$STATE/peer-data" "$STATE/orderer-data"
chmod 0750 "$STATE/peer-data" "$STATE/orderer-data"

# ---- namespace and Secrets ----
k apply -f "$REPO_ROOT/e2e/incluster/manifests/namespace.yaml" >/dev/null
secret() { # NAME FLAGS...: create or replace a generic Secret
	local name=$1
	shift
	k -n "$NS" create secret generic "$name" "$@" --dry-run=client -o yaml | k apply -f - >/dev/null
}
# MSP folders become flat Secrets; the Deployments map the keys back into cacerts/,
# signcerts/, keystore/ and tlscacerts/, so config.yaml's NodeOU paths are rewritten.
msp_flags() { # MSPDIR
	local dir=$1 f
	sed "s#cacerts/[^[:space:]]*#cacerts/ca.pem#" "$dir/config.yaml" >"$dir/config.flat.yaml"
	f=("$dir"/cacerts/*)
	printf '%s\n' "--from-file=cacert.pem=${f[0]}"
	f=("$dir"/signcerts/*)
	printf '%s\n' "--from-file=signcert.pem=${f[0]}"
	f=("$dir"/keystore/*)
	printf '%s\n' "--from-file=key.pem=${f[0]}"
	f=("$dir"/tlscacerts/*)
	printf '%s\n' "--from-file=tlscacert.pem=${f[0]}"
	printf '%s\n' "--from-file=config.yaml=$dir/config.flat.yaml"
}
mapfile -t flags < <(msp_flags "$PEER_DIR/msp")
secret peer0-org1-msp "${flags[@]}"
secret peer0-org1-tls --from-file="$PEER_DIR/tls/server.crt" --from-file="$PEER_DIR/tls/server.key" --from-file="$PEER_DIR/tls/ca.crt"
mapfile -t flags < <(msp_flags "$ORDERER_DIR/msp")
secret orderer-msp "${flags[@]}"
secret orderer-tls --from-file="$ORDERER_DIR/tls/server.crt" --from-file="$ORDERER_DIR/tls/server.key" --from-file="$ORDERER_DIR/tls/ca.crt"
build_cache "$NS"
step "namespace $NS and Secrets applied"

# ---- the overlay, with the three images pinned by digest ----
kdir="$STATE/kustomize"
mkdir -p "$kdir"
overlay=$(realpath --relative-to="$kdir" "$REPO_ROOT/e2e/incluster/overlay")
# The builder's config: the overlay's, plus what source packages need to build in the
# cluster (this peer has no Go or Node.js): build Jobs reach the registry at the node IP.
if [ -n "${GO_TOOLCHAIN_IMAGE:-}" ] && [ -n "${REGISTRY_POD:-}" ]; then
	{
		grep -v '^registry: ' "$REPO_ROOT/e2e/incluster/overlay/config.yaml"
		cat <<CFG
registry: $REGISTRY_POD/kubecc
insecureRegistries: [$REGISTRY_POD]
kubeccImage: $KUBECC_IMAGE
buildImages: {golang: $GO_TOOLCHAIN_IMAGE${NODE_IMAGE:+, node: $NODE_IMAGE}}
buildEnv: {GOPROXY: "${BUILD_GOPROXY:-}"}
buildCache: kubecc-build-cache
CFG
		# Node.js chaincode: the harness's Node.js image is both the toolchain and the base.
		[ -z "${NODE_IMAGE:-}" ] || echo "nodeBaseImage: $NODE_IMAGE"
	} >"$kdir/config.yaml"
else
	cp "$REPO_ROOT/e2e/incluster/overlay/config.yaml" "$kdir/config.yaml"
fi
cat >"$kdir/kustomization.yaml" <<YAML
# Written by e2e/incluster/up.sh: the repository's overlay with the images of this run.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $overlay
configMapGenerator:
  - name: kubecc-config
    namespace: $NS
    behavior: replace
    files: [config.yaml]
generatorOptions:
  disableNameSuffixHash: true
images:
  - {name: kubecc, newName: ${KUBECC_IMAGE%@*}, digest: ${KUBECC_IMAGE#*@}}
  - {name: fabric-peer, newName: ${PEER_IMAGE%@*}, digest: ${PEER_IMAGE#*@}}
  - {name: fabric-orderer, newName: ${ORDERER_IMAGE%@*}, digest: ${ORDERER_IMAGE#*@}}
YAML
k apply -k "$kdir" | sed 's/^/  /' >&2
# Chaincode Pods run as the namespace's default service account (token not mounted).
wait_for 30 "service account $NS/default" k -n "$NS" get serviceaccount default

# ---- orderer ----
step "waiting for the orderer"
k -n "$NS" rollout status deploy/orderer --timeout=180s >&2
osn=(--orderer-address "$NODE_IP:$ORDERER_ADMIN_PORT" --ca-file "$ORDERER_TLSCA"
	--client-cert "$ORDERER_DIR/tls/server.crt" --client-key "$ORDERER_DIR/tls/server.key")
wait_for 60 "orderer admin endpoint" osnadmin channel list "${osn[@]}"
if ! osnadmin channel list "${osn[@]}" 2>/dev/null | grep -q "\"name\": *\"$CHANNEL\""; then
	osnadmin channel join "${osn[@]}" --channelID "$CHANNEL" --config-block "$BLOCK" >"$STATE/osnadmin-join.log"
	step "orderer joined $CHANNEL"
fi
raft_leader() {
	curl -fsS --max-time 2 "http://$NODE_IP:$ORDERER_OPS_PORT/metrics" |
		grep -Eq "^consensus_etcdraft_is_leader\\{channel=\"$CHANNEL\"\\} 1"
}
wait_for 60 "orderer to lead $CHANNEL" raft_leader

# ---- the tests' environment (peer CLI on the host as the org admin) ----
cat >"$STATE/env.new" <<ENV
# The in-cluster Fabric network (written by e2e/incluster/up.sh). Source it after
# $KUBECC_E2E_ROOT/cluster/env: peer CLI on the host as the Org1 admin.
export PATH=$(printf %q "$FABRIC_BIN"):"\$PATH"
export FABRIC_CFG_PATH=$(printf %q "$FABRIC_HOME/config")
export FABRIC_LOGGING_SPEC="\${FABRIC_LOGGING_SPEC:-grpc=warning:info}"
export CORE_PEER_ADDRESS=$NODE_IP:$PEER_PORT
export CORE_PEER_LOCALMSPID=Org1MSP
export CORE_PEER_MSPCONFIGPATH=$(printf %q "$ADMIN_MSP")
export CORE_PEER_TLS_ENABLED=true
export CORE_PEER_TLS_ROOTCERT_FILE=$(printf %q "$PEER_TLSCA")
export ORDERER_ADDRESS=$NODE_IP:$ORDERER_PORT
export ORDERER_CA=$(printf %q "$ORDERER_TLSCA")
export ORDERER_TLS_ENABLED=true
export ORDERER_ADMIN_ADDRESS=$NODE_IP:$ORDERER_ADMIN_PORT
export ORDERER_ADMIN_TLS_CERT=$(printf %q "$ORDERER_DIR/tls/server.crt")
export ORDERER_ADMIN_TLS_KEY=$(printf %q "$ORDERER_DIR/tls/server.key")
export CHANNEL=$CHANNEL
export INCLUSTER_NAMESPACE=$NS
export INCLUSTER_PEER_DEPLOYMENT=peer0-org1
export INCLUSTER_PEER_SELECTOR=app.kubernetes.io/name=peer0-org1
export PEER_CHAINCODE_ADDRESS=$NODE_IP:$PEER_CC_PORT
export PEER_OPERATIONS=$NODE_IP:$PEER_OPS_PORT
export ORDERER_OPERATIONS=$NODE_IP:$ORDERER_OPS_PORT
export KUBECC_IMAGE=$KUBECC_IMAGE
export PEER_IMAGE=$PEER_IMAGE
export ORDERER_IMAGE=$ORDERER_IMAGE
ENV

# ---- peer ----
step "waiting for the peer"
k -n "$NS" rollout status deploy/peer0-org1 --timeout=180s >&2
(
	# shellcheck source=/dev/null
	. "$STATE/env.new"
	wait_for 60 "peer $CORE_PEER_ADDRESS" peer channel list
	if ! peer channel list 2>/dev/null | grep -qx "$CHANNEL"; then
		peer channel join -b "$BLOCK" 2>"$STATE/peer-join.log"
		step "peer joined $CHANNEL"
	fi
	wait_for 60 "peer to have $CHANNEL" peer channel getinfo -c "$CHANNEL"
)
mv -f "$STATE/env.new" "$STATE/env"
step "in-cluster network up: namespace $NS, peer $NODE_IP:$PEER_PORT, orderer $NODE_IP:$ORDERER_PORT, channel $CHANNEL; env $STATE/env"
