#!/usr/bin/env bash
# kubecc on kind, for machines with Docker: needs a running Docker engine, kind and
# kubectl on PATH (and network access to Docker Hub and the Go module proxy). kubecc is
# installed exactly as in any other cluster: its own image plus the install kit.
#
#   1. a local registry container kind-registry (127.0.0.1:5001 on the host,
#      kind-registry:5000 on the "kind" Docker network), as in kind's local-registry guide;
#   2. a kind cluster (kind-config.yaml) whose containerd pulls both names over plain HTTP;
#   3. kubecc's image kind-registry:5000/kubecc/kubecc:dev, made by `make image` in a Go
#      container (no Go needed on the host), and the admin's CLI image
#      localhost:5001/kubecc-kind-tools:3.1.1 (peer CLI, cryptogen, configtxgen, osnadmin);
#   4. crypto material from cryptogen and the channel's genesis block from configtxgen,
#      stored as Secrets (peer0-org1-msp, peer0-org1-tls, orderer-msp, orderer-tls,
#      fabric-admin, fabric-channel);
#   5. overlay/ applied with `kubectl apply -k` (the stock peer, orderer and CLI of
#      manifests/ plus the kit: deploy/base and the deploy/peer component), both images
#      pinned by the digests just pushed; then the orderer joined to mychannel with
#      osnadmin and the peer with `peer channel join`, both from the cli Pod.
# Idempotent: a second run rebuilds the images (a changed kubecc rolls the peer) and
# re-applies, but keeps the crypto material (delete the namespace or run down.sh for a
# new network). Then: bash e2e/kind/demo.sh. Cluster name: KIND_CLUSTER_NAME (default kubecc).
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

# ---- 3. images -------------------------------------------------------------------------
# kubecc's own image, made by the project's own tool (`make image`, i.e. `kubecc image
# self`, no Docker build) in a Go container on the "kind" network, which pushes it to
# the registry container by the name nodes and pods use. The checkout goes in as a tar
# stream, so that make writes nothing into it; .git goes along for the image's revision
# and date (the same commit gives the same digest).
log "building kubecc's image with make image in $GO_IMAGE: $KUBECC_REPO:$KUBECC_TAG"
docker volume create "$GO_CACHE_VOLUME" >/dev/null
KUBECC_IMAGE=$(tar -C "$REPO_ROOT" --exclude=./bin --exclude=./.e2e -cf - . |
	docker run --rm -i --network kind -v "$GO_CACHE_VOLUME:/cache" -e GOMODCACHE=/cache/mod -e GOCACHE=/cache/build \
		"$GO_IMAGE" sh -c 'set -e; mkdir /src; tar -C /src --no-same-owner -xf -
			make -C /src --no-print-directory image IMAGE_REPO="$1" VERSION="$2" IMAGE_FLAGS=--insecure' \
		sh "$KUBECC_REPO" "$KUBECC_TAG" | tail -n1)
[[ $KUBECC_IMAGE == "$KUBECC_REPO@sha256:"* ]] || die "make image printed '$KUBECC_IMAGE', not $KUBECC_REPO@sha256:..."
log "pushed $KUBECC_IMAGE"

# The admin's CLI image: the peer CLI and core.yaml of the very peer image the network
# runs (its binary is static), the other Fabric tools from the Go module proxy, on a Go
# image (packaging Go chaincode runs `go list`). Built and pushed by the host's Docker.
log "building $TOOLS_IMAGE (Fabric tools; the first build takes a few minutes)"
docker build -t "$TOOLS_IMAGE" - >&2 <<DOCKERFILE
FROM $GO_IMAGE AS build
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath \\
	-ldflags '-X github.com/hyperledger/fabric/common/metadata.Version=$FABRIC_VERSION' \\
	github.com/hyperledger/fabric/cmd/cryptogen@$FABRIC_MODULE_VERSION \\
	github.com/hyperledger/fabric/cmd/configtxgen@$FABRIC_MODULE_VERSION \\
	github.com/hyperledger/fabric/cmd/osnadmin@$FABRIC_MODULE_VERSION

FROM hyperledger/fabric-peer:$FABRIC_VERSION AS peer

FROM $GO_IMAGE
COPY --from=peer /usr/local/bin/peer /usr/local/bin/peer
COPY --from=peer /etc/hyperledger/fabric/ /etc/hyperledger/fabric/
COPY --from=build /out/ /usr/local/bin/
ENV FABRIC_CFG_PATH=/etc/hyperledger/fabric
DOCKERFILE
push_out=$(docker push "$TOOLS_IMAGE" | tee /dev/stderr)
tools_digest=$(sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\).*/\1/p' <<<"$push_out" | tail -n1)
[ -n "$tools_digest" ] || die "docker push $TOOLS_IMAGE printed no digest"
TOOLS_PINNED="${TOOLS_IMAGE%:*}@$tools_digest"
log "pushed $TOOLS_PINNED"

# ---- 4. crypto material and genesis block ----------------------------------------------
k apply -f "$KIND_DIR/manifests/namespace.yaml" >/dev/null
tools() { # TOOL ARGS...: a Fabric tool from the CLI image, on $work/crypto as /work
	local tool=$1
	shift
	docker run --rm --user "$(id -u):$(id -g)" -v "$work/crypto:/work" -w /work --entrypoint "$tool" "$TOOLS_IMAGE" "$@"
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

# ---- 5. the network with kubecc, channel -----------------------------------------------
k apply -f "$KIND_DIR/local-registry-hosting.yaml" >/dev/null
# overlay/ with this run's images by digest: a changed kubecc image rolls the peer.
pin_kustomization "$work/kustomize" "$KUBECC_IMAGE" "$TOOLS_PINNED"
k apply -k "$work/kustomize" | sed 's/^/  /' >&2
k -n "$NS" rollout status deployment/orderer --timeout=300s >&2
k -n "$NS" rollout status deployment/cli --timeout=300s >&2
k -n "$NS" rollout status deployment/peer0-org1 --timeout=300s >&2

# osnadmin talks to the orderer's admin endpoint with the orderer org admin's TLS client cert.
osn=(--orderer-address "$ORDERER_SVC:7053" --ca-file /etc/hyperledger/admin/orderer-tlsca.pem
	--client-cert /etc/hyperledger/admin/osnadmin/client.crt --client-key /etc/hyperledger/admin/osnadmin/client.key)
if ! cli_exec osnadmin channel list "${osn[@]}" 2>/dev/null | grep -q "\"$CHANNEL\""; then
	cli_exec osnadmin channel join "${osn[@]}" --channelID "$CHANNEL" --config-block "/etc/hyperledger/channel/$CHANNEL.block" >/dev/null
	log "orderer joined $CHANNEL"
fi
# The ledger is an emptyDir: a new peer Pod (a new kubecc image) joins again.
if ! cli_exec peer channel getinfo -c "$CHANNEL" >/dev/null 2>&1; then
	end=$((SECONDS + 60))
	until cli_exec peer channel join -b "/etc/hyperledger/channel/$CHANNEL.block"; do
		[ "$SECONDS" -lt "$end" ] || die "the peer could not join $CHANNEL"
		sleep 2 # the orderer elects itself raft leader first
	done
	log "peer joined $CHANNEL"
fi
log "kind network up in $((SECONDS - t0)) s: kubectl --context $KCTX -n $NS get pods; next: bash e2e/kind/demo.sh"
