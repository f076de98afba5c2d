# Shared settings for the e2e harness scripts. Source it; it defines no side effects.
# shellcheck shell=bash

# Where binaries built from the module proxy are cached across runs (keyed by version).
# shellcheck disable=SC2034 # these settings are used by the scripts that source this file
KUBECC_CACHE="${KUBECC_CACHE:-$HOME/.cache/kubecc}"
# Where a running harness keeps its state, sockets and logs. Short on purpose: unix socket
# paths are limited to 108 bytes.
KUBECC_E2E_ROOT="${KUBECC_E2E_ROOT:-/tmp/kubecc-e2e}"
KUBECC_E2E_LOGS="$KUBECC_E2E_ROOT/logs"

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
FABRIC_MODULE_VERSION="v1.4.0-rc1.0.20250510200036-435a7f1a780a" # = Fabric v3.1.1
FABRIC_VERSION="3.1.1"

REGISTRY_ADDR="127.0.0.1:5000"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The machine's first non-loopback IPv4 address: pods reach the host there, and the
# kubelet refuses a loopback node IP.
node_ip() {
	local ip
	ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1)
	[ -n "$ip" ] || ip=$(hostname -I 2>/dev/null | awk '{print $1}')
	echo "$ip"
}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.2 s until it succeeds.
wait_for() {
	local secs=$1 what=$2; shift 2
	local end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || die "timed out after ${secs}s waiting for $what"
		sleep 0.2
	done
}

# build_go_tool MODULE VERSION PACKAGE OUT: go build of PACKAGE (from MODULE at VERSION)
# into OUT, from a throwaway module: go install pkg@version needs version lists, which
# the module proxy here may refuse. Writes OUT.new, then renames it.
build_go_tool() {
	local module=$1 version=$2 pkg=$3 out=$4 tmp
	tmp=$(mktemp -d)
	cat >"$tmp/go.mod" <<MOD
module kubecc.local/toolbuild

go 1.25

require $module $version
MOD
	printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >"$tmp/tools.go"
	mkdir -p "$(dirname "$out")"
	if ! (cd "$tmp" && GOFLAGS=-mod=mod go mod tidy && CGO_ENABLED=0 go build -trimpath -o "$out.new" "$pkg") >&2; then
		rm -rf "$tmp"
		return 1
	fi
	rm -rf "$tmp"
	mv -f "$out.new" "$out"
}

# build_cache NAMESPACE: a PersistentVolumeClaim kubecc-build-cache in NAMESPACE, bound to
# a hostPath volume, $KUBECC_E2E_ROOT/build-cache, that outlives cluster restarts and is
# shared by every namespace's build Jobs (config buildCache): Go's module and build
# caches are safe for concurrent use. Needs KUBECTL.
build_cache() {
	local ns=$1 dir="$KUBECC_E2E_ROOT/build-cache"
	mkdir -p "$dir"
	chown 10001:10001 "$dir"
	# A volume whose claim went with its namespace stays Released and binds no new claim.
	if [ "$("$KUBECTL" get pv "kubecc-build-cache-$ns" -o jsonpath='{.status.phase}' 2>/dev/null)" = Released ]; then
		"$KUBECTL" delete pv "kubecc-build-cache-$ns" --wait=true >/dev/null
	fi
	"$KUBECTL" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: kubecc-build-cache-$ns}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: kubecc-build-cache
  claimRef: {namespace: $ns, name: kubecc-build-cache}
  hostPath: {path: $dir, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: kubecc-build-cache, namespace: $ns}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: kubecc-build-cache
  volumeName: kubecc-build-cache-$ns
  resources: {requests: {storage: 10Gi}}
YAML
	wait_for 30 "build cache claim in $ns to bind" \
		sh -c "[ \"\$('$KUBECTL' -n '$ns' get pvc kubecc-build-cache -o jsonpath='{.status.phase}')\" = Bound ]"
}
