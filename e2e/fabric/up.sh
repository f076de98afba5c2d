#!/usr/bin/env bash
# Starts a one-org Fabric network (one etcdraft orderer, peer0.org1.example.com) on this
# machine with channel "mychannel" joined, state in $KUBECC_E2E_ROOT/fabric. Idempotent.
#
# Env: KUBECC_FABRIC_VERSION (the Fabric release, e2e/lib.sh; another one recreates the
# network), KUBECC_BUILDER_DIR (external builder folder holding bin/; default
# $KUBECC_E2E_ROOT/builder), PEER_TLS (true|false, default true; false runs the whole
# network without TLS, since a peer with TLS off cannot pull blocks from a TLS orderer),
# FABRIC_BATCH_TIMEOUT (default 100ms), FABRIC_NODE_LOGGING_SPEC (default
# grpc=warning:info), and the builder variables in BUILDER_PROPAGATE (common.sh), captured
# for the peer. When the network is already up with the same settings, only a changed
# builder environment matters: the peer is restarted with it (ledger kept).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KUBECC_BUILDER_DIR="${KUBECC_BUILDER_DIR:-$KUBECC_E2E_ROOT/builder}"
PEER_TLS="${PEER_TLS:-true}"
case "$PEER_TLS" in true | false) ;; *) die "PEER_TLS must be true or false, not '$PEER_TLS'" ;; esac
ORDERER_TLS="$PEER_TLS" # a TLS-off peer cannot pull blocks from a TLS orderer (measured)
BATCH_TIMEOUT="${FABRIC_BATCH_TIMEOUT:-100ms}"
NODE_LOGGING_SPEC="${FABRIC_NODE_LOGGING_SPEC:-grpc=warning:info}"
IP=$(node_ip)
[ -n "$IP" ] || die "no non-loopback IPv4 address found"
KUBECC_BUILDER_DIR=$(mkdir -p "$KUBECC_BUILDER_DIR" && cd "$KUBECC_BUILDER_DIR" && pwd)
# The second external builder, after kubecc: the minimal process builder (procbuilder/),
# copied so that an edit of the checkout cannot change a running peer's hooks halfway.
# It claims only what kubecc leaves (metadata type procgo: the benchmarks' baseline).
PROCBUILDER_DIR="$KUBECC_E2E_ROOT/procbuilder"
mkdir -p "$PROCBUILDER_DIR/bin"
for h in detect build release run; do
	cp -f "$REPO_ROOT/e2e/fabric/procbuilder/bin/$h" "$PROCBUILDER_DIR/bin/.$h.new" &&
		mv -f "$PROCBUILDER_DIR/bin/.$h.new" "$PROCBUILDER_DIR/bin/$h"
done
BUILDERS="kubecc:$KUBECC_BUILDER_DIR,procbuilder:$PROCBUILDER_DIR"
# The builders' propagateEnvironment is in core.yaml: a new list is a new network.
propagate_list="${BUILDER_PROPAGATE[*]}"
PARAMS="fabric=$FABRIC_VERSION${KUBECC_FABRIC_HOME:+@$KUBECC_FABRIC_HOME} peer_tls=$PEER_TLS orderer_tls=$ORDERER_TLS ip=$IP builder=$KUBECC_BUILDER_DIR batch=$BATCH_TIMEOUT builders=$BUILDERS propagate=${propagate_list// /,}"

t_up=$(now_ns)
export PATH="$FABRIC_BIN:$PATH"

# write_peer_env FILE: the peer's environment (read by peer.sh start, which runs the peer
# with nothing else but HOME and PATH): what external builders get through
# propagateEnvironment. Go settings default to `go env`, so a Go build inside a hook shares
# this machine's caches.
write_peer_env() {
	local v val
	{
		echo "# Environment of the peer process (written by up.sh, read by peer.sh start)."
		printf 'export FABRIC_CFG_PATH=%q\n' "$FABRIC_CONFIG"
		printf 'export FABRIC_LOGGING_SPEC=%q\n' "$NODE_LOGGING_SPEC"
		printf 'export PATH=%q\n' "$PATH"
		if [ -n "${TMPDIR:-}" ]; then printf 'export TMPDIR=%q\n' "$TMPDIR"; fi
		for v in "${BUILDER_PROPAGATE[@]}"; do
			val="${!v-}"
			case "$v" in GOCACHE | GOMODCACHE | GOPATH | GOPROXY | GOFLAGS | GOSUMDB | GONOSUMDB | GOPRIVATE)
				[ -n "$val" ] || val=$(go env "$v")
				;;
			DOCKER_CONFIG) [ -n "$val" ] || val="$KUBECC_E2E_ROOT/registry-auth" ;;
			esac
			if [ -n "$val" ]; then printf 'export %s=%q\n' "$v" "$val"; fi
		done
	} >"$1"
}

healthy() {
	[ -f "$FABRIC_DIR/params" ] && [ "$(cat "$FABRIC_DIR/params")" = "$PARAMS" ] || return 1
	pid_alive orderer && pid_alive peer || return 1
	(
		# shellcheck source=/dev/null
		. "$FABRIC_DIR/env"
		peer channel getinfo -c "$CHANNEL" >/dev/null 2>&1
	)
}

if healthy; then
	# Same network: only a change of the builder environment needs a peer restart.
	write_peer_env "$FABRIC_DIR/peer.env.new"
	if ! cmp -s <(grep -v '^export PATH=' "$FABRIC_DIR/peer.env") <(grep -v '^export PATH=' "$FABRIC_DIR/peer.env.new"); then
		log "fabric: builder environment changed; restarting the peer"
		mv "$FABRIC_DIR/peer.env.new" "$FABRIC_DIR/peer.env"
		bash "$(dirname "${BASH_SOURCE[0]}")/peer.sh" restart
	else
		rm -f "$FABRIC_DIR/peer.env.new"
	fi
	log "fabric network already up ($PARAMS)"
	exit 0
fi
if [ -e "$FABRIC_DIR" ] || pid_alive orderer || pid_alive peer; then
	log "fabric: stale or different network state; recreating"
	bash "$(dirname "${BASH_SOURCE[0]}")/down.sh"
fi

bash "$(dirname "${BASH_SOURCE[0]}")/install.sh"
need curl

mkdir -p "$FABRIC_DIR" "$FABRIC_CONFIG" "$FABRIC_DIR/peer-data" "$FABRIC_DIR/orderer-data"
: >"$KUBECC_E2E_LOGS/orderer.log"
: >"$KUBECC_E2E_LOGS/peer.log"

# --- crypto material ------------------------------------------------------------------
t=$(now_ns)
cat >"$FABRIC_DIR/crypto-config.yaml" <<YAML
OrdererOrgs:
  - Name: Orderer
    Domain: example.com
    EnableNodeOUs: true
    Specs:
      - Hostname: orderer
        SANS: [localhost, 127.0.0.1, "$IP"]
PeerOrgs:
  - Name: Org1
    Domain: org1.example.com
    EnableNodeOUs: true
    Specs:
      - Hostname: peer0
        SANS: [localhost, 127.0.0.1, "$IP"]
    Users:
      Count: 1
YAML
cryptogen generate --config="$FABRIC_DIR/crypto-config.yaml" --output="$FABRIC_ORGS" >/dev/null

# --- channel genesis block ------------------------------------------------------------
if [ "$ORDERER_TLS" = true ]; then consenter_port=$ORDERER_PORT; else consenter_port=$ORDERER_CLUSTER_PORT; fi
# The newest capabilities each release knows: configtxgen and the nodes of an older release
# refuse a channel that requires one they do not know (channel V3_0 came with 3.0,
# application V2_5 with 2.5).
case "$FABRIC_VERSION" in
2.[0-4].*) channel_cap=V2_0 app_cap=V2_0 ;;
2.*) channel_cap=V2_0 app_cap=V2_5 ;;
*) channel_cap=V3_0 app_cap=V2_5 ;;
esac
mkdir -p "$FABRIC_DIR/configtx"
cat >"$FABRIC_DIR/configtx/configtx.yaml" <<YAML
Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: OrdererMSP
    MSPDir: $FABRIC_ORGS/ordererOrganizations/example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
    OrdererEndpoints:
      - 127.0.0.1:$ORDERER_PORT
  - &Org1
    Name: Org1MSP
    ID: Org1MSP
    MSPDir: $FABRIC_ORGS/peerOrganizations/org1.example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')"}
      Writers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.client')"}
      Admins: {Type: Signature, Rule: "OR('Org1MSP.admin')"}
      Endorsement: {Type: Signature, Rule: "OR('Org1MSP.peer')"}

Capabilities:
  Channel: &ChannelCapabilities {$channel_cap: true}
  Orderer: &OrdererCapabilities {V2_0: true}
  Application: &ApplicationCapabilities {$app_cap: true}

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
  BatchTimeout: $BATCH_TIMEOUT
  BatchSize:
    MaxMessageCount: 100
    AbsoluteMaxBytes: 99 MB
    PreferredMaxBytes: 2 MB
  EtcdRaft:
    Consenters:
      - Host: 127.0.0.1
        Port: $consenter_port
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
BLOCK="$FABRIC_DIR/$CHANNEL_NAME.block"
configtxgen -configPath "$FABRIC_DIR/configtx" -profile OneOrgChannel -channelID "$CHANNEL_NAME" \
	-outputBlock "$BLOCK" 2>>"$KUBECC_E2E_LOGS/configtxgen.log"
log "fabric: crypto material and genesis block in $(ms_since "$t") ms"

# --- node configuration ---------------------------------------------------------------
YAMLSET="$KUBECC_E2E_ROOT/bin/yamlset"
if [ ! -x "$YAMLSET" ] || [ "$REPO_ROOT/e2e/tools/yamlset/main.go" -nt "$YAMLSET" ]; then
	(cd "$REPO_ROOT" && go build -o "$YAMLSET" ./e2e/tools/yamlset)
fi

otls="$ORDERER_DIR/tls"
orderer_sets=(
	"General.ListenAddress=127.0.0.1"
	"General.ListenPort=$ORDERER_PORT"
	"General.TLS.Enabled=$ORDERER_TLS"
	"General.TLS.PrivateKey=$otls/server.key"
	"General.TLS.Certificate=$otls/server.crt"
	"General.TLS.RootCAs=[$otls/ca.crt]"
	"General.Cluster.ClientCertificate=$otls/server.crt"
	"General.Cluster.ClientPrivateKey=$otls/server.key"
	"General.Cluster.RootCAs=[$otls/ca.crt]"
	"General.BootstrapMethod=none"
	"General.LocalMSPDir=$ORDERER_DIR/msp"
	"General.LocalMSPID=OrdererMSP"
	"FileLedger.Location=$FABRIC_DIR/orderer-data/ledger"
	"Consensus.WALDir=$FABRIC_DIR/orderer-data/etcdraft/wal"
	"Consensus.SnapDir=$FABRIC_DIR/orderer-data/etcdraft/snapshot"
	"Operations.ListenAddress=$ORDERER_OPS"
	"Metrics.Provider=prometheus"
	"Admin.ListenAddress=$ORDERER_ADMIN"
	"Admin.TLS.Enabled=true"
	"Admin.TLS.PrivateKey=$otls/server.key"
	"Admin.TLS.Certificate=$otls/server.crt"
	"Admin.TLS.RootCAs=[$otls/ca.crt]"
	"Admin.TLS.ClientAuthRequired=true"
	"Admin.TLS.ClientRootCAs=[$otls/ca.crt]"
	"ChannelParticipation.Enabled=true"
)
if [ "$ORDERER_TLS" = false ]; then
	# etcdraft insists on TLS between consenters: give it a TLS listener of its own.
	orderer_sets+=(
		"General.Cluster.ListenAddress=127.0.0.1"
		"General.Cluster.ListenPort=$ORDERER_CLUSTER_PORT"
		"General.Cluster.ServerCertificate=$otls/server.crt"
		"General.Cluster.ServerPrivateKey=$otls/server.key"
	)
fi
"$YAMLSET" -in "$FABRIC_HOME/config/orderer.yaml" -out "$FABRIC_CONFIG/orderer.yaml" "${orderer_sets[@]}"

propagate=$(
	IFS=,
	echo "${BUILDER_PROPAGATE[*]}"
)
ptls="$PEER_DIR/tls"
"$YAMLSET" -in "$FABRIC_HOME/config/core.yaml" -out "$FABRIC_CONFIG/core.yaml" \
	"peer.id=peer0.org1.example.com" \
	"peer.networkId=kubecc" \
	"peer.listenAddress=0.0.0.0:$PEER_PORT" \
	"peer.address=$IP:$PEER_PORT" \
	"peer.chaincodeListenAddress=0.0.0.0:$PEER_CC_PORT" \
	"peer.chaincodeAddress=$IP:$PEER_CC_PORT" \
	"peer.gossip.bootstrap=127.0.0.1:$PEER_PORT" \
	"peer.gossip.endpoint=$IP:$PEER_PORT" \
	"peer.gossip.externalEndpoint=$IP:$PEER_PORT" \
	"peer.tls.enabled=$PEER_TLS" \
	"peer.tls.clientAuthRequired=false" \
	"peer.tls.cert.file=$ptls/server.crt" \
	"peer.tls.key.file=$ptls/server.key" \
	"peer.tls.rootcert.file=$ptls/ca.crt" \
	"peer.fileSystemPath=$FABRIC_DIR/peer-data" \
	"peer.mspConfigPath=$PEER_DIR/msp" \
	"peer.localMspId=Org1MSP" \
	"vm.endpoint=" \
	"chaincode.externalBuilders=[{name: kubecc, path: '$KUBECC_BUILDER_DIR', propagateEnvironment: [$propagate]}, {name: procbuilder, path: '$PROCBUILDER_DIR', propagateEnvironment: [$propagate]}]" \
	"chaincode.startuptimeout=120s" \
	"chaincode.executetimeout=30s" \
	"ledger.snapshots.rootDir=$FABRIC_DIR/peer-data/snapshots" \
	"operations.listenAddress=$PEER_OPS" \
	"metrics.provider=prometheus"

write_peer_env "$FABRIC_DIR/peer.env"
{
	printf 'export FABRIC_CFG_PATH=%q\n' "$FABRIC_CONFIG"
	printf 'export FABRIC_LOGGING_SPEC=%q\n' "$NODE_LOGGING_SPEC"
} >"$FABRIC_DIR/orderer.env"

# --- admin CLI environment ------------------------------------------------------------
{
	echo "# Admin CLI environment for the e2e Fabric network (written by up.sh). Source it."
	# shellcheck disable=SC2016 # $PATH expands when the file is sourced
	printf 'export PATH=%q:"$PATH"\n' "$FABRIC_BIN"
	printf 'export FABRIC_CFG_PATH=%q\n' "$FABRIC_CONFIG"
	# shellcheck disable=SC2016 # expands when the file is sourced
	echo 'export FABRIC_LOGGING_SPEC="${FABRIC_LOGGING_SPEC:-grpc=warning:info}"'
	printf 'export CORE_PEER_ADDRESS=%q\n' "localhost:$PEER_PORT"
	echo "export CORE_PEER_LOCALMSPID=Org1MSP"
	printf 'export CORE_PEER_MSPCONFIGPATH=%q\n' "$ORG1_ADMIN_MSP"
	printf 'export CORE_PEER_TLS_ENABLED=%q\n' "$PEER_TLS"
	printf 'export CORE_PEER_TLS_ROOTCERT_FILE=%q\n' "$PEER_TLSCA"
	printf 'export ORDERER_ADDRESS=%q\n' "localhost:$ORDERER_PORT"
	printf 'export ORDERER_CA=%q\n' "$ORDERER_TLSCA"
	printf 'export ORDERER_TLS_ENABLED=%q\n' "$ORDERER_TLS"
	printf 'export ORDERER_ADMIN_ADDRESS=%q\n' "$ORDERER_ADMIN"
	printf 'export ORDERER_ADMIN_TLS_CERT=%q\n' "$ORDERER_DIR/tls/server.crt"
	printf 'export ORDERER_ADMIN_TLS_KEY=%q\n' "$ORDERER_DIR/tls/server.key"
	printf 'export CHANNEL=%q\n' "$CHANNEL_NAME"
	# so that a test that recreates the network (up.sh) keeps this release
	printf 'export KUBECC_FABRIC_VERSION=%q\n' "v$FABRIC_VERSION"
	if [ -n "${KUBECC_FABRIC_HOME:-}" ]; then printf 'export KUBECC_FABRIC_HOME=%q\n' "$KUBECC_FABRIC_HOME"; fi
	printf 'export PEER_OPERATIONS=%q\n' "$PEER_OPS"
	printf 'export ORDERER_OPERATIONS=%q\n' "$ORDERER_OPS"
	printf 'export PEER_CHAINCODE_ADDRESS=%q\n' "$IP:$PEER_CC_PORT"
	printf 'export KUBECC_BUILDER_DIR=%q\n' "$KUBECC_BUILDER_DIR"
	echo "# Arrays for bash: peer chaincode invoke \"\${ORDERER_ARGS[@]}\" \"\${PEER_ARGS[@]}\" ..."
	if [ "$ORDERER_TLS" = true ]; then
		printf 'ORDERER_ARGS=(-o %q --tls --cafile %q)\n' "localhost:$ORDERER_PORT" "$ORDERER_TLSCA"
	else
		printf 'ORDERER_ARGS=(-o %q)\n' "localhost:$ORDERER_PORT"
	fi
	if [ "$PEER_TLS" = true ]; then
		printf 'PEER_ARGS=(--peerAddresses %q --tlsRootCertFiles %q)\n' "localhost:$PEER_PORT" "$PEER_TLSCA"
	else
		printf 'PEER_ARGS=(--peerAddresses %q)\n' "localhost:$PEER_PORT"
	fi
} >"$FABRIC_DIR/env"

# --- orderer --------------------------------------------------------------------------
t=$(now_ns)
start_daemon orderer "$FABRIC_DIR/orderer.env" orderer
wait_for 60 "orderer operations endpoint" http_ok "http://$ORDERER_OPS/healthz"
osn=(--orderer-address "$ORDERER_ADMIN" --ca-file "$ORDERER_TLSCA"
	--client-cert "$ORDERER_DIR/tls/server.crt" --client-key "$ORDERER_DIR/tls/server.key")
wait_for 30 "orderer admin endpoint" osnadmin channel list "${osn[@]}"
osnadmin channel join "${osn[@]}" --channelID "$CHANNEL_NAME" --config-block "$BLOCK" >>"$KUBECC_E2E_LOGS/orderer.log"
raft_leader() {
	curl -fsS --max-time 2 "http://$ORDERER_OPS/metrics" |
		grep -Eq "^consensus_etcdraft_is_leader\\{channel=\"$CHANNEL_NAME\"\\} 1"
}
wait_for 60 "orderer to lead $CHANNEL_NAME" raft_leader
log "fabric: orderer up, $CHANNEL_NAME joined, raft leader in $(ms_since "$t") ms"

# --- peer -----------------------------------------------------------------------------
t=$(now_ns)
bash "$(dirname "${BASH_SOURCE[0]}")/peer.sh" start
# shellcheck source=/dev/null
. "$FABRIC_DIR/env"
peer channel join -b "$BLOCK" 2>>"$KUBECC_E2E_LOGS/peer-cli.log"
wait_for 60 "peer to have $CHANNEL" peer channel getinfo -c "$CHANNEL"
log "fabric: peer up and joined $CHANNEL in $(ms_since "$t") ms"

echo "$PARAMS" >"$FABRIC_DIR/params"
log "fabric network up in $(ms_since "$t_up") ms (peer TLS $PEER_TLS, orderer TLS $ORDERER_TLS, builder $KUBECC_BUILDER_DIR); env: $FABRIC_DIR/env"
