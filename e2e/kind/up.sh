#!/usr/bin/env bash
# kubecc on kind, for machines with Docker: needs a running Docker engine, kind and
# kubectl on PATH (and network access to Docker Hub and the Go module proxy).
#
#   1. a local registry container kind-registry (127.0.0.1:5001 on the host,
#      kind-registry:5000 on the "kind" Docker network), as in kind's local-registry guide;
#   2. a kind cluster (kind-config.yaml) whose containerd pulls both names over plain HTTP;
#   3. the peer image localhost:5001/kubecc-peer:3.1.1: hyperledger/fabric-peer:3.1.1 plus
#      kubecc's hooks at /opt/kubecc/bin, a Go toolchain (the build hook compiles Go
#      chaincode) and cryptogen/configtxgen/osnadmin, all built from this checkout and
#      the Go module proxy inside Docker (no Go needed on the host);
#   4. crypto material from cryptogen and the channel's genesis block from configtxgen,
#      stored as Secrets (peer0-org1-msp, peer0-org1-tls, orderer-msp, orderer-tls,
#      fabric-admin, fabric-channel);
#   5. manifests/*.yaml applied verbatim (no placeholders), then the orderer joined to
#      mychannel with osnadmin and the peer with `peer channel join`.
# Idempotent: a second run rebuilds the peer image and re-applies the manifests, but keeps
# the crypto material (delete the namespace or run down.sh for a new network).
# Then: bash e2e/kind/demo.sh. Cluster name: KIND_CLUSTER_NAME (default kubecc).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need docker kind kubectl
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"
t0=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- 1. registry -----------------------------------------------------------------------
if [ "$(docker inspect -f '{{.State.Running}}' "$REG_NAME" 2>/dev/null || true)" != true ]; then
	docker rm -f "$REG_NAME" >/dev/null 2>&1 || true
	log "starting registry container $REG_NAME on 127.0.0.1:$REG_PORT"
	docker run -d --restart=always -p "127.0.0.1:$REG_PORT:5000" --network bridge --name "$REG_NAME" registry:2 >/dev/null
fi

# ---- 2. cluster ------------------------------------------------------------------------
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
	log "creating kind cluster $CLUSTER_NAME"
	kind create cluster --name "$CLUSTER_NAME" --config "$KIND_DIR/kind-config.yaml"
fi
# Inside a node, localhost is the node: both registry names point containerd at the
# registry container, over plain HTTP.
for node in $(kind get nodes --name "$CLUSTER_NAME"); do
	for host in "localhost:$REG_PORT" "$REG_NAME:5000"; do
		docker exec "$node" mkdir -p "/etc/containerd/certs.d/$host"
		printf 'server = "http://%s:5000"\n\n[host."http://%s:5000"]\n  capabilities = ["pull", "resolve"]\n' "$REG_NAME" "$REG_NAME" |
			docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/$host/hosts.toml"
	done
done
if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$REG_NAME")" = null ]; then
	docker network connect kind "$REG_NAME"
fi

# ---- 3. peer image ---------------------------------------------------------------------
log "building $PEER_IMAGE (kubecc hooks, Go, Fabric tools; first build takes a few minutes)"
mkdir -p "$work/image/src"
tar -C "$REPO_ROOT" --exclude=./.git --exclude=./bin --exclude=./.e2e -cf - . | tar -C "$work/image/src" -xf -
cat >"$work/image/Dockerfile" <<DOCKERFILE
FROM $GO_IMAGE AS build
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
WORKDIR /src
COPY src/ ./
RUN go build -tags grpcnotrace -ldflags '-s -w' -o /out/kubecc/bin/ ./detect ./build ./release ./run && \\
	go build -tags grpcnotrace -ldflags '-s -w' -o /out/kubecc/bin/run-pod ./run-pod
RUN GOBIN=/out/fabric go install \\
	-ldflags '-X github.com/hyperledger/fabric/common/metadata.Version=$FABRIC_VERSION' \\
	github.com/hyperledger/fabric/cmd/cryptogen@$FABRIC_MODULE_VERSION \\
	github.com/hyperledger/fabric/cmd/configtxgen@$FABRIC_MODULE_VERSION \\
	github.com/hyperledger/fabric/cmd/osnadmin@$FABRIC_MODULE_VERSION

FROM hyperledger/fabric-peer:$FABRIC_VERSION
COPY --from=build /usr/local/go /usr/local/go
COPY --from=build /out/fabric/ /usr/local/bin/
COPY --from=build /out/kubecc/bin/ /opt/kubecc/bin/
ENV PATH=/usr/local/go/bin:\$PATH
DOCKERFILE
docker build -t "$PEER_IMAGE" "$work/image" >&2
docker push "$PEER_IMAGE" >&2
log "pushed $PEER_IMAGE"

# ---- 4. crypto material and genesis block ----------------------------------------------
k apply -f "$MANIFESTS/00-namespace.yaml" >/dev/null
tools() { # TOOL ARGS...: a Fabric tool from the peer image, on $work/crypto as /work
	local tool=$1
	shift
	docker run --rm --user "$(id -u):$(id -g)" -v "$work/crypto:/work" -w /work --entrypoint "$tool" "$PEER_IMAGE" "$@"
}
# msp_keys DIR: kubectl --from-file flags for an MSP folder, under the fixed names the
# manifests map back into cacerts/ signcerts/ keystore/ tlscacerts/.
msp_keys() {
	local dir=$1 f
	f=("$dir"/cacerts/*)
	sed "s#cacerts/[^[:space:]]*#cacerts/ca.pem#" "$dir/config.yaml" >"$dir/config.fixed.yaml"
	printf '%s\n' "--from-file=cacert.pem=${f[0]}"
	f=("$dir"/signcerts/*)
	printf '%s\n' "--from-file=signcert.pem=${f[0]}"
	f=("$dir"/keystore/*)
	printf '%s\n' "--from-file=key.pem=${f[0]}"
	f=("$dir"/tlscacerts/*)
	printf '%s\n' "--from-file=tlscacert.pem=${f[0]}"
	printf '%s\n' "--from-file=config.yaml=$dir/config.fixed.yaml"
}
secret() { # NAME FLAGS...: create or replace a generic Secret
	local name=$1
	shift
	k -n "$NS" create secret generic "$name" "$@" --dry-run=client -o yaml | k apply -f - >/dev/null
}

if k -n "$NS" get secret fabric-channel >/dev/null 2>&1; then
	log "crypto material already in namespace $NS: kept"
else
	mkdir -p "$work/crypto"
	sans() { printf '%s, %s.%s, %s.%s.svc, %s.%s.svc.cluster.local, localhost, 127.0.0.1' "$1" "$1" "$NS" "$1" "$NS" "$1" "$NS"; }
	cat >"$work/crypto/crypto-config.yaml" <<YAML
OrdererOrgs:
  - Name: Orderer
    Domain: example.com
    EnableNodeOUs: true
    Specs:
      - Hostname: orderer
        SANS: [$(sans orderer)]
PeerOrgs:
  - Name: Org1
    Domain: org1.example.com
    EnableNodeOUs: true
    Specs:
      - Hostname: peer0
        SANS: [$(sans peer0-org1)]
    Users:
      Count: 1
YAML
	tools cryptogen generate --config=/work/crypto-config.yaml --output=/work/organizations >/dev/null
	orgs=/work/organizations
	cat >"$work/crypto/configtx.yaml" <<YAML
Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: OrdererMSP
    MSPDir: $orgs/ordererOrganizations/example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
    OrdererEndpoints: ["$ORDERER_SVC:7050"]
  - &Org1
    Name: Org1MSP
    ID: Org1MSP
    MSPDir: $orgs/peerOrganizations/org1.example.com/msp
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
  BatchTimeout: 500ms
  BatchSize: {MaxMessageCount: 100, AbsoluteMaxBytes: 99 MB, PreferredMaxBytes: 2 MB}
  EtcdRaft:
    Consenters:
      - Host: $ORDERER_SVC
        Port: 7050
        ClientTLSCert: $orgs/ordererOrganizations/example.com/orderers/orderer.example.com/tls/server.crt
        ServerTLSCert: $orgs/ordererOrganizations/example.com/orderers/orderer.example.com/tls/server.crt
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
	tools configtxgen -configPath /work -profile OneOrgChannel -channelID "$CHANNEL" -outputBlock "/work/$CHANNEL.block" 2>/dev/null

	o="$work/crypto/organizations"
	peer="$o/peerOrganizations/org1.example.com/peers/peer0.org1.example.com"
	orderer="$o/ordererOrganizations/example.com/orderers/orderer.example.com"
	admin="$o/peerOrganizations/org1.example.com/users/Admin@org1.example.com"
	osnadmin="$o/ordererOrganizations/example.com/users/Admin@example.com"
	mapfile -t flags < <(msp_keys "$peer/msp")
	secret peer0-org1-msp "${flags[@]}"
	secret peer0-org1-tls --from-file="$peer/tls/server.crt" --from-file="$peer/tls/server.key" --from-file="$peer/tls/ca.crt"
	mapfile -t flags < <(msp_keys "$orderer/msp")
	secret orderer-msp "${flags[@]}"
	secret orderer-tls --from-file="$orderer/tls/server.crt" --from-file="$orderer/tls/server.key" --from-file="$orderer/tls/ca.crt"
	mapfile -t flags < <(msp_keys "$admin/msp")
	secret fabric-admin "${flags[@]}" \
		--from-file=peer-tlsca.pem="$o/peerOrganizations/org1.example.com/tlsca/tlsca.org1.example.com-cert.pem" \
		--from-file=orderer-tlsca.pem="$o/ordererOrganizations/example.com/tlsca/tlsca.example.com-cert.pem" \
		--from-file=osnadmin-client.crt="$osnadmin/tls/client.crt" \
		--from-file=osnadmin-client.key="$osnadmin/tls/client.key"
	secret fabric-channel --from-file="$CHANNEL.block=$work/crypto/$CHANNEL.block"
	log "crypto material and genesis block stored as Secrets in $NS"
fi

# ---- 5. manifests, channel -------------------------------------------------------------
restart=false
if k -n "$NS" get deployment peer0-org1 >/dev/null 2>&1; then restart=true; fi
k apply -f "$MANIFESTS" >/dev/null
if [ "$restart" = true ]; then
	# A rebuilt peer image under the same tag: a new Pod pulls it (imagePullPolicy Always).
	# The ledger is an emptyDir, so the peer joins the channel again below.
	k -n "$NS" rollout restart deployment/peer0-org1 >/dev/null
fi
k -n "$NS" rollout status deployment/orderer --timeout=300s
k -n "$NS" rollout status deployment/peer0-org1 --timeout=300s

# osnadmin talks to the orderer's admin endpoint with the orderer org admin's TLS client cert.
osn=(--orderer-address "$ORDERER_SVC:7053" --ca-file /etc/hyperledger/admin/orderer-tlsca.pem
	--client-cert /etc/hyperledger/admin/osnadmin/client.crt --client-key /etc/hyperledger/admin/osnadmin/client.key)
if ! peer_exec osnadmin channel list "${osn[@]}" 2>/dev/null | grep -q "\"$CHANNEL\""; then
	peer_exec osnadmin channel join "${osn[@]}" --channelID "$CHANNEL" --config-block "/etc/hyperledger/channel/$CHANNEL.block" >/dev/null
	log "orderer joined $CHANNEL"
fi
if ! peer_exec peer channel getinfo -c "$CHANNEL" >/dev/null 2>&1; then
	end=$((SECONDS + 60))
	until peer_exec peer channel join -b "/etc/hyperledger/channel/$CHANNEL.block"; do
		[ "$SECONDS" -lt "$end" ] || die "the peer could not join $CHANNEL"
		sleep 2 # the orderer elects itself raft leader first
	done
	log "peer joined $CHANNEL"
fi
log "kind network up in $((SECONDS - t0)) s: kubectl --context $KCTX -n $NS get pods; next: bash e2e/kind/demo.sh"
