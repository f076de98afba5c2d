#!/usr/bin/env bash
# Brings the whole harness up: a real single-node Kubernetes cluster, a registry on
# loopback, and a stock Fabric network whose peer uses kubecc (this checkout's bin/) as
# its external builder. Idempotent; reuses cached binaries.
#   PEER_TLS=false  runs the Fabric network with TLS off
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

t0=$SECONDS
[ -x "$REPO_ROOT/bin/run-serverless" ] || make -C "$REPO_ROOT" all >&2
bash "$REPO_ROOT/e2e/cluster/install.sh"
bash "$REPO_ROOT/e2e/fabric/install.sh"
bash "$REPO_ROOT/e2e/cluster/up.sh"
# shellcheck source=/dev/null
. "$KUBECC_E2E_ROOT/cluster/env"

# The builder folder the peer is pointed at: a copy of bin/ (so a rebuild of the
# checkout cannot change a running peer's hooks halfway) and the builder's config.
KUBECC_NAMESPACE="${KUBECC_NAMESPACE:-kubecc}"
builder="$KUBECC_E2E_ROOT/builder"
mkdir -p "$builder/bin"
for h in detect build release run run-serverless; do
	cp -f "$REPO_ROOT/bin/$h" "$builder/bin/.$h.new" && mv -f "$builder/bin/.$h.new" "$builder/bin/$h"
done
"$KUBECTL" get namespace "$KUBECC_NAMESPACE" >/dev/null 2>&1 || "$KUBECTL" create namespace "$KUBECC_NAMESPACE" >/dev/null

# The peer's hooks talk to the cluster as the README's least-privilege service account,
# not as cluster admin, so the shipped RBAC manifest is what the e2e suite proves.
# The install kit's base (ServiceAccount, Role, RoleBinding, ConfigMap) in the harness's
# namespace, through kustomize as a user applies it; the pre-pull ClusterRole beside it.
kit="$REPO_ROOT/.e2e/kit"
mkdir -p "$kit"
printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nresources: [../../deploy/base]\n' "$KUBECC_NAMESPACE" >"$kit/kustomization.yaml"
"$KUBECTL" apply -k "$kit" >/dev/null
sed "s/namespace: fabric-chaincode/namespace: $KUBECC_NAMESPACE/" "$REPO_ROOT/examples/builder/rbac-prepull.yaml" |
	"$KUBECTL" apply -f - >/dev/null
token=$("$KUBECTL" -n "$KUBECC_NAMESPACE" create token fabric-peer --duration=48h)
server=$("$KUBECTL" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$("$KUBECTL" config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
umask 077
cat >"$builder/kubeconfig.new" <<KCFG
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: fabric-peer, user: {token: "$token"}}]
contexts: [{name: e2e, context: {cluster: e2e, user: fabric-peer, namespace: $KUBECC_NAMESPACE}}]
current-context: e2e
KCFG
mv -f "$builder/kubeconfig.new" "$builder/kubeconfig"
umask 022
cat >"$builder/config.yaml.new" <<YAML
# kubecc builder settings for the e2e harness (written by e2e/up.sh)
registry: $REGISTRY/kubecc
registryInsecure: true
kubeconfig: $builder/kubeconfig
namespace: $KUBECC_NAMESPACE
prepull: true
YAML
mv -f "$builder/config.yaml.new" "$builder/config.yaml"

# What builds in the cluster need (TestClusterBuild, the in-cluster peer): toolchain
# images made from this machine's Go and (if it has it) Node.js, kubecc's own image, and
# the download settings of this machine's Go, recorded for the tests and the in-cluster
# network. NODE_IMAGE, also the runtime base of Node.js chaincode, is named as pods reach
# the registry: kubecc pulls a base image itself, in build Jobs too.
log "build images: Go and Node.js toolchains (e2e/cluster/toolimage.sh) and kubecc (make image)"
go_image=$(bash "$REPO_ROOT/e2e/cluster/toolimage.sh" go | tail -n1)
node_image=
if command -v node >/dev/null; then
	node_image=$(bash "$REPO_ROOT/e2e/cluster/toolimage.sh" node | tail -n1)
	[[ $node_image == "$REGISTRY_ADDR"/*@sha256:* ]] || die "Node.js image '$node_image': want name@digest"
	node_image=$REGISTRY_POD/${node_image#"$REGISTRY_ADDR"/}
fi
kubecc_image=$(make --no-print-directory -C "$REPO_ROOT" image | tail -n1)
[[ $go_image == *@sha256:* && $kubecc_image == *@sha256:* ]] || die "toolchain image '$go_image', kubecc image '$kubecc_image': want name@digest"
# A registry endpoint that wants credentials: TestClusterBuild serves the harness
# registry behind HTTP basic auth at REGISTRY_AUTH_POD while it runs. The password is
# made once and kept in 0600 files: a Docker config, which the host peer's hooks read
# (DOCKER_CONFIG, e2e/fabric/common.sh) and the test turns into a Secret.
REGISTRY_AUTH_POD="$NODE_IP:5001"
auth_dir="$KUBECC_E2E_ROOT/registry-auth"
if [ ! -s "$auth_dir/config.json" ] || ! grep -q "\"$REGISTRY_AUTH_POD\"" "$auth_dir/config.json"; then
	(
		umask 077
		mkdir -p "$auth_dir"
		pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
		printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY_AUTH_POD" "$(printf 'kubecc-e2e:%s' "$pass" | base64 -w0)" >"$auth_dir/config.json.new"
		mv -f "$auth_dir/config.json.new" "$auth_dir/config.json"
	)
fi
# containerd pulls from it over plain HTTP, as from the registry itself (read per pull).
mkdir -p "$KUBECC_E2E_ROOT/containerd/certs.d/$REGISTRY_AUTH_POD"
printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n' \
	"$REGISTRY_AUTH_POD" "$REGISTRY_AUTH_POD" >"$KUBECC_E2E_ROOT/containerd/certs.d/$REGISTRY_AUTH_POD/hosts.toml"

cat >"$KUBECC_E2E_ROOT/builds.env.new" <<ENV
# Written by e2e/up.sh: what builds in the cluster use on this harness.
export GO_TOOLCHAIN_IMAGE=$go_image
export NODE_IMAGE=$node_image
export KUBECC_IMAGE=$kubecc_image
export REGISTRY_POD=$REGISTRY_POD
export REGISTRY_AUTH_POD=$REGISTRY_AUTH_POD
export REGISTRY_AUTH_CONFIG=$auth_dir/config.json
export BUILD_GOPROXY=$(go env GOPROXY)
ENV
mv -f "$KUBECC_E2E_ROOT/builds.env.new" "$KUBECC_E2E_ROOT/builds.env"
build_cache "$KUBECC_NAMESPACE"

KUBECC_BUILDER_DIR="$builder" bash "$REPO_ROOT/e2e/fabric/up.sh"
log "harness up in $((SECONDS - t0)) s: cluster env $KUBECC_E2E_ROOT/cluster/env, fabric env $KUBECC_E2E_ROOT/fabric/env, logs $KUBECC_E2E_LOGS"
