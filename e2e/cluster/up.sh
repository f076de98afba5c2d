#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Starts a real single-node Kubernetes cluster and an OCI registry on this machine, from the
# binaries that install.sh put in $KUBECC_CACHE. Idempotent: exits at once when the cluster
# is already up and healthy; otherwise first cleans whatever an earlier (possibly killed) run
# left behind, then starts: registry (127.0.0.1:5000, and <node IP>:5000 for pods), etcd,
# containerd, kube-apiserver (https://127.0.0.1:6443), kube-controller-manager,
# kube-scheduler and kubelet, and pushes the pod sandbox image 127.0.0.1:5000/pause:3.10
# built from e2e/tools/pause. Pods get egress through the host (egress.sh: NAT to the
# package registries) and reach the registry at the node IP; an iptables rule keeps every
# other machine out of the registry (registry_guard_on in down.sh).
#
# Writes $KUBECC_E2E_ROOT/cluster/admin.kubeconfig and $KUBECC_E2E_ROOT/cluster/env
# (sourceable: KUBECONFIG, KUBECTL, NODE_IP, NODE_NAME, REGISTRY, REGISTRY_POD,
# CONTAINERD_ADDRESS, PATH).
# Logs: $KUBECC_E2E_LOGS/<name>.log; pids: $KUBECC_E2E_ROOT/pids/<name>.pid.
set -euo pipefail
# shellcheck source=down.sh
. "$(dirname "${BASH_SOURCE[0]}")/down.sh"

PAUSE_IMAGE="$REGISTRY_ADDR/pause:3.10"
TOOLS_BIN="$KUBECC_CACHE/tools/bin"
T0=$SECONDS
START_EPOCH=$(date +%s)
NODE_IP=$(node_ip)
[ -n "$NODE_IP" ] || die "no non-loopback IPv4 address on this machine"
# The same registry as pods (build Jobs) reach it, and the name the node pulls their images by.
REGISTRY_POD_ADDR="$NODE_IP:${REGISTRY_ADDR##*:}"
# Pods resolve names (build Jobs reach the package registries) with the host's
# nameservers, unless those are on loopback, which a pod cannot reach: then no DNS.
POD_RESOLV_CONF=""
if grep -Eq '^nameserver[[:space:]]+' /etc/resolv.conf 2>/dev/null &&
	! grep -Eq '^nameserver[[:space:]]+(127\.|::1)' /etc/resolv.conf; then
	POD_RESOLV_CONF=/etc/resolv.conf
fi

step() { log "up: $* (+$((SECONDS - T0))s)"; }

for b in "$K8S_DIR"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kubectl} "$ETCD_DIR/etcd" \
	"$DEBROOT"/usr/bin/{containerd,containerd-shim-runc-v2,docker-registry} "$DEBROOT/usr/sbin/runc"; do
	[ -x "$b" ] || die "missing $b: run e2e/cluster/install.sh first"
done
for t in openssl curl ip sysctl iptables go; do
	command -v "$t" >/dev/null || die "missing $t: run e2e/cluster/install.sh first"
done

CURL_ADMIN=(curl -fsS --max-time 3 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key")
KCTL=("$KUBECTL" --kubeconfig "$CLUSTER_DIR/admin.kubeconfig")

node_ready_since() { # EPOCH: node Ready with a heartbeat not older than EPOCH
	local out st hb
	out=$("${KCTL[@]}" --request-timeout=3s get node "$NODE_NAME" \
		-o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' 2>/dev/null) || return 1
	read -r st hb <<<"$out"
	[ "$st" = True ] && [ -n "$hb" ] && [ "$(date -d "$hb" +%s)" -ge "$1" ]
}

healthy() {
	local c
	for c in "${COMPONENTS[@]}"; do [ -n "$(pid_of "$c" || true)" ] || return 1; done
	[ -f "$CLUSTER_DIR/env" ] && [ -f "$CLUSTER_DIR/admin.kubeconfig" ] || return 1
	# A cluster started by an older up.sh, without the audit log, is started again.
	tr '\0' '\n' <"/proc/$(pid_of kube-apiserver)/cmdline" | grep -q '^--audit-log-path=' || return 1
	curl -fsS --max-time 2 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 || return 1
	curl -fsS --max-time 2 "http://$REGISTRY_POD_ADDR/v2/" >/dev/null 2>&1 || return 1
	"${CURL_ADMIN[@]}" "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1 || return 1
	curl -fsS --max-time 2 http://127.0.0.1:10248/healthz >/dev/null 2>&1 || return 1
	node_ready_since 0
}

if healthy; then
	registry_guard_on
	bash "$REPO_ROOT/e2e/cluster/egress.sh" on
	log "up: cluster already up and healthy (KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig)"
	exit 0
fi

# ---- leftovers of an earlier run (clean or killed) ----
if compgen -G "$PID_DIR/*.pid" >/dev/null || [ -n "$(stray_pids)$(kubepods_pids)$(mounts_under "$KUBELET_DIR")$(mounts_under "$CTRD_DIR")" ] ||
	ip link show "$CNI_BRIDGE" >/dev/null 2>&1 || [ -f "$SYSCTL_SAVED" ] || compgen -G "/sys/fs/cgroup/*/kubepods" >/dev/null || [ -d /sys/fs/cgroup/kubepods ]; then
	step "cleaning leftovers of an earlier run"
	# A Fabric network of the old cluster would lose its pid files with the cluster's and
	# run on unseen: stop it first (e2e/up.sh starts it again).
	bash "$REPO_ROOT/e2e/fabric/down.sh" >/dev/null 2>&1 || true
	cluster_cleanup
fi

for port in "$REGISTRY_ADDR" "127.0.0.1:$ETCD_CLIENT_PORT" "127.0.0.1:$ETCD_PEER_PORT" ":$APISERVER_PORT" \
	"127.0.0.1:10257" "127.0.0.1:10259" "127.0.0.1:10248" "$NODE_IP:10250"; do
	if ss -Hltn "sport = :${port##*:}" | grep -q .; then
		die "port ${port##*:} is already in use by another program: $(ss -Hltnp "sport = :${port##*:}" | head -n1)"
	fi
done

mkdir -p "$KUBECC_E2E_LOGS" "$PID_DIR" "$CONF_DIR" "$CLUSTER_DIR/bin" "$REGISTRY_DATA" "$CTRD_DIR" \
	"$CNI_DIR/net.d" "$KUBELET_DIR" "$POD_LOGS_DIR" "$TOOLS_BIN"

# ---- host state to restore on down ----
if [ ! -f "$SYSCTL_SAVED" ]; then
	for k in "${SYSCTL_KEYS[@]}"; do
		v=$(sysctl -n "$k" 2>/dev/null) && printf '%s=%s\n' "$k" "$v"
	done >"$SYSCTL_SAVED.tmp"
	mv "$SYSCTL_SAVED.tmp" "$SYSCTL_SAVED"
fi
if [ ! -f "$OUTSIDE_CREATED" ]; then
	for p in "${OUTSIDE_PATHS[@]}"; do
		[ -e "$p" ] || echo "$p"
	done >"$OUTSIDE_CREATED"
fi

# ---- certificates ----
gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

gen_ca() { # NAME CN
	gen_key "$PKI_DIR/$1.key"
	openssl req -x509 -new -key "$PKI_DIR/$1.key" -subj "/CN=$2" -days 3650 -out "$PKI_DIR/$1.crt" \
		-config "$PKI_DIR/openssl.cnf" -extensions v3_ca 2>/dev/null
}

gen_cert() { # NAME CA SUBJECT EKU [SANS]
	local name=$1 ca=$2 subj=$3 eku=$4 sans=${5:-}
	gen_key "$PKI_DIR/$name.key"
	{
		echo "[leaf]"
		echo "basicConstraints = critical,CA:FALSE"
		echo "keyUsage = critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage = $eku"
		echo "authorityKeyIdentifier = keyid"
		[ -z "$sans" ] || echo "subjectAltName = $sans"
	} >"$PKI_DIR/$name.ext"
	openssl req -new -key "$PKI_DIR/$name.key" -subj "$subj" -config "$PKI_DIR/openssl.cnf" -out "$PKI_DIR/$name.csr" 2>/dev/null
	openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/$ca.crt" -CAkey "$PKI_DIR/$ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 365 -extfile "$PKI_DIR/$name.ext" -extensions leaf \
		-out "$PKI_DIR/$name.crt" 2>/dev/null
	rm -f "$PKI_DIR/$name.csr" "$PKI_DIR/$name.ext"
}

PKI_STAMP="v1 $NODE_IP $NODE_NAME"
if [ "$(cat "$PKI_DIR/stamp" 2>/dev/null)" != "$PKI_STAMP" ] ||
	! openssl x509 -checkend $((30 * 86400)) -noout -in "$PKI_DIR/apiserver.crt" >/dev/null 2>&1; then
	step "generating certificates"
	rm -rf "$PKI_DIR"
	mkdir -p "$PKI_DIR"
	cat >"$PKI_DIR/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
EOF
	gen_ca ca kubecc-e2e-ca
	gen_ca front-proxy-ca kubecc-e2e-front-proxy-ca
	gen_cert apiserver ca "/CN=kube-apiserver" serverAuth \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME,IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1"
	gen_cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
	gen_cert admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
	gen_cert controller-manager ca "/CN=system:kube-controller-manager" clientAuth
	gen_cert scheduler ca "/CN=system:kube-scheduler" clientAuth
	gen_cert kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
	gen_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
	gen_key "$PKI_DIR/sa.key"
	openssl pkey -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
	chmod 600 "$PKI_DIR"/*.key
	echo "$PKI_STAMP" >"$PKI_DIR/stamp"
fi

write_kubeconfig() { # FILE CERT-NAME
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubecc-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI_DIR/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI_DIR/$2.crt")
    client-key-data: $(base64 -w0 "$PKI_DIR/$2.key")
contexts:
- name: kubecc-e2e
  context:
    cluster: kubecc-e2e
    user: $2
current-context: kubecc-e2e
EOF
	chmod 600 "$1"
}
for n in controller-manager scheduler kubelet; do write_kubeconfig "$CONF_DIR/$n.kubeconfig" "$n"; done

# ---- configuration files ----
cat >"$CONF_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGISTRY_DATA
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 0.0.0.0:${REGISTRY_ADDR##*:}
  secret: kubecc-e2e-local
EOF

# Plain-HTTP pulls by either name (containerd reads these per pull: config_path below).
for r in "$REGISTRY_ADDR" "$REGISTRY_POD_ADDR"; do
	mkdir -p "$CTRD_DIR/certs.d/$r"
	cat >"$CTRD_DIR/certs.d/$r/hosts.toml" <<EOF
server = "http://$r"

[host."http://$r"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
EOF
done

cat >"$CONF_DIR/containerd.toml" <<EOF
version = 2
root = "$CTRD_DIR/root"
state = "$CTRD_DIR/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$CTRD_SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD_DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  enable_unprivileged_ports = false
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$DEBROOT/usr/sbin/runc"
        Root = "$CTRD_DIR/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$DEBROOT/usr/lib/cni"
    conf_dir = "$CNI_DIR/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CTRD_DIR/certs.d"
EOF

cat >"$CNI_DIR/net.d/10-kubecc.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "kubecc",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_DIR/networks",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF

cat >"$CONF_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
    cacheTTL: 30s
  x509:
    clientCAFile: $PKI_DIR/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 30s
    cacheUnauthorizedTTL: 5s
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CTRD_SOCK
resolvConf: "$POD_RESOLV_CONF"
failSwapOn: false
podLogsDir: $POD_LOGS_DIR
makeIPTablesUtilChains: false
serializeImagePulls: false
nodeStatusUpdateFrequency: 4s
nodeStatusReportFrequency: 1m
syncFrequency: 10s
runtimeRequestTimeout: 2m
evictionPressureTransitionPeriod: 30s
rotateCertificates: false
serverTLSBootstrap: false
maxPods: 110
EOF

# ---- start ----
# start_component NAME COMMAND...: run detached (own session), log to $KUBECC_E2E_LOGS/NAME.log.
start_component() {
	local name=$1 logf="$KUBECC_E2E_LOGS/$1.log"; shift
	[ ! -f "$logf" ] || mv -f "$logf" "$logf.prev"
	"${DETACH[@]}" "$@" >"$logf" 2>&1 </dev/null &
	echo $! >"$PID_DIR/$name.pid"
}

# alive_or_die NAME: fail with the end of its log if the process died.
alive_or_die() {
	[ -n "$(pid_of "$1" || true)" ] && return 0
	tail -n 20 "$KUBECC_E2E_LOGS/$1.log" >&2 || true
	die "$1 exited; see $KUBECC_E2E_LOGS/$1.log"
}

# wait_component SECONDS NAME COMMAND...: wait until COMMAND succeeds while NAME is alive.
wait_component() {
	local secs=$1 name=$2; shift 2
	local end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		alive_or_die "$name"
		[ "$SECONDS" -lt "$end" ] || die "timed out after ${secs}s waiting for $name; see $KUBECC_E2E_LOGS/$name.log"
		sleep 0.1
	done
}

rm -rf "$ETCD_DATA" "$KUBELET_DIR" "$CNI_DIR/networks" "$CTRD_DIR/state" "$CTRD_DIR/runc"
mkdir -p "$KUBELET_DIR"

# Before the registry listens on all addresses: only this machine and its pods may reach it.
registry_guard_on
bash "$REPO_ROOT/e2e/cluster/egress.sh" on
step "starting registry, etcd, containerd"
start_component registry "$DEBROOT/usr/bin/docker-registry" serve "$CONF_DIR/registry.yml"
start_component etcd "$ETCD_DIR/etcd" --name=kubecc --data-dir="$ETCD_DATA" \
	--listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
	--listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster="kubecc=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
	--unsafe-no-fsync --log-level=warn
start_component containerd env PATH="$DEBROOT/usr/bin:$DEBROOT/usr/sbin:$PATH" \
	"$DEBROOT/usr/bin/containerd" --config "$CONF_DIR/containerd.toml"

# The sandbox image: built and pushed while the control plane starts.
build_pause_image() {
	local mod="$KUBECC_CACHE/tools/mod"
	mkdir -p "$mod"
	# A private copy of the main module's go.mod/go.sum (-modfile), so the build may add
	# go.sum lines without touching the work tree.
	cp "$REPO_ROOT/go.mod" "$mod/tools.mod"
	cp "$REPO_ROOT/go.sum" "$mod/tools.sum" 2>/dev/null || : >"$mod/tools.sum"
	if ! (cd "$REPO_ROOT" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -modfile="$mod/tools.mod" -trimpath -ldflags="-s -w" \
		-o "$TOOLS_BIN/" ./e2e/tools/pause ./e2e/tools/pauseimage ./e2e/tools/netcheck); then
		[ -x "$TOOLS_BIN/pause" ] && [ -x "$TOOLS_BIN/pauseimage" ] || return 1
		echo "warning: building e2e/tools failed; using the binaries built before"
	fi
	wait_for 30 "registry" curl -fsS --max-time 2 "http://$REGISTRY_ADDR/v2/"
	"$TOOLS_BIN/pauseimage" -binary "$TOOLS_BIN/pause" -ref "$PAUSE_IMAGE" -path /pause -user 65535:65535
}
build_pause_image >"$KUBECC_E2E_LOGS/pause-image.log" 2>&1 &
pause_job=$!

wait_component 30 etcd curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
step "etcd ready; starting kube-apiserver"
# An audit log of what kubecc's hooks ask of the API server (their service accounts
# only, metadata only): the benchmarks count requests per launch from it.
cat >"$CONF_DIR/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: [system:serviceaccount:${KUBECC_NAMESPACE:-kubecc}:fabric-peer, system:serviceaccount:fabric-incluster:fabric-peer]
  - level: None
EOF
start_component kube-apiserver "$K8S_DIR/kube-apiserver" \
	--advertise-address="$NODE_IP" --secure-port="$APISERVER_PORT" \
	--etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
	--allow-privileged=true --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
	--client-ca-file="$PKI_DIR/ca.crt" \
	--tls-cert-file="$PKI_DIR/apiserver.crt" --tls-private-key-file="$PKI_DIR/apiserver.key" \
	--kubelet-client-certificate="$PKI_DIR/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI_DIR/apiserver-kubelet-client.key" \
	--kubelet-preferred-address-types=InternalIP,Hostname \
	--service-cluster-ip-range="$SERVICE_CIDR" \
	--service-account-issuer=https://kubernetes.default.svc.cluster.local \
	--service-account-key-file="$PKI_DIR/sa.pub" --service-account-signing-key-file="$PKI_DIR/sa.key" \
	--requestheader-client-ca-file="$PKI_DIR/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
	--requestheader-extra-headers-prefix=X-Remote-Extra- --requestheader-group-headers=X-Remote-Group \
	--requestheader-username-headers=X-Remote-User \
	--proxy-client-cert-file="$PKI_DIR/front-proxy-client.crt" --proxy-client-key-file="$PKI_DIR/front-proxy-client.key" \
	--audit-policy-file="$CONF_DIR/audit-policy.yaml" --audit-log-path="$KUBECC_E2E_LOGS/audit.log" \
	--audit-log-maxsize=200 --audit-log-maxbackup=1 \
	--profiling=false

write_kubeconfig "$CLUSTER_DIR/admin.kubeconfig" admin
ln -sfn "$KUBECTL" "$CLUSTER_DIR/bin/kubectl"
cat >"$CLUSTER_DIR/bin/ctr" <<EOF
#!/bin/sh
exec "$DEBROOT/usr/bin/ctr" --address "$CTRD_SOCK" --namespace k8s.io "\$@"
EOF
chmod +x "$CLUSTER_DIR/bin/ctr"

wait_component 30 containerd test -S "$CTRD_SOCK"
wait_component 60 kube-apiserver "${CURL_ADMIN[@]}" "https://127.0.0.1:$APISERVER_PORT/readyz"
step "kube-apiserver ready; starting controller-manager, scheduler, kubelet"
start_component kube-controller-manager "$K8S_DIR/kube-controller-manager" \
	--kubeconfig="$CONF_DIR/controller-manager.kubeconfig" \
	--authentication-kubeconfig="$CONF_DIR/controller-manager.kubeconfig" \
	--authorization-kubeconfig="$CONF_DIR/controller-manager.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false \
	--client-ca-file="$PKI_DIR/ca.crt" --requestheader-client-ca-file="$PKI_DIR/front-proxy-ca.crt" \
	--root-ca-file="$PKI_DIR/ca.crt" --service-account-private-key-file="$PKI_DIR/sa.key" \
	--use-service-account-credentials=true \
	--cluster-signing-cert-file="$PKI_DIR/ca.crt" --cluster-signing-key-file="$PKI_DIR/ca.key" \
	--service-cluster-ip-range="$SERVICE_CIDR" --kube-api-qps=100 --kube-api-burst=200 --profiling=false
start_component kube-scheduler "$K8S_DIR/kube-scheduler" \
	--kubeconfig="$CONF_DIR/scheduler.kubeconfig" \
	--authentication-kubeconfig="$CONF_DIR/scheduler.kubeconfig" \
	--authorization-kubeconfig="$CONF_DIR/scheduler.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false --profiling=false
start_component kubelet "$K8S_DIR/kubelet" \
	--config="$CONF_DIR/kubelet.yaml" --kubeconfig="$CONF_DIR/kubelet.kubeconfig" \
	--root-dir="$KUBELET_DIR" --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" --v=1

if ! wait "$pause_job"; then
	cat "$KUBECC_E2E_LOGS/pause-image.log" >&2
	die "building or pushing $PAUSE_IMAGE failed"
fi
step "pushed $(tail -n1 "$KUBECC_E2E_LOGS/pause-image.log")"

wait_component 90 kubelet node_ready_since "$START_EPOCH"
step "node $NODE_NAME Ready"
wait_component 60 kube-controller-manager "${KCTL[@]}" --request-timeout=3s get serviceaccount default -n default
# The node authorizer can lag behind a new pod's binding ("no relationship found between
# node and this object"); the kubelet's status update of that pod is then refused and
# waits for its next change, up to 15 s later, which hides a pull error that long. The
# kubelet's classic RBAC role covers that window on this one-node, single-tenant harness.
"${KCTL[@]}" create clusterrolebinding kubecc-e2e-node --clusterrole=system:node --user="system:node:$NODE_NAME" \
	--dry-run=client -o yaml | "${KCTL[@]}" apply -f - >/dev/null
for c in "${COMPONENTS[@]}"; do alive_or_die "$c"; done

cat >"$CLUSTER_DIR/env.tmp" <<EOF
# Written by e2e/cluster/up.sh: source it to use the e2e cluster.
export KUBECONFIG="$CLUSTER_DIR/admin.kubeconfig"
export KUBECTL="$KUBECTL"
export NODE_IP="$NODE_IP"
export NODE_NAME="$NODE_NAME"
export REGISTRY="$REGISTRY_ADDR"
export REGISTRY_POD="$REGISTRY_POD_ADDR"
export CONTAINERD_ADDRESS="$CTRD_SOCK"
export KUBECC_E2E_ROOT="$KUBECC_E2E_ROOT"
export PATH="$CLUSTER_DIR/bin:\$PATH"
EOF
mv "$CLUSTER_DIR/env.tmp" "$CLUSTER_DIR/env"
step "cluster up: source $CLUSTER_DIR/env"
