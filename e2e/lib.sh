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

# Fabric releases the harness builds from the Go module proxy, chosen with
# KUBECC_FABRIC_VERSION. Fabric's v2+ tags are no Go module versions (the module has no
# /v2 or /v3 path), so a release is the pseudo-version of its tag's commit. The proxy here
# serves github.com/hyperledger/fabric at the versions below only: it refuses the
# pseudo-versions of v3.1.5 (v1.4.0-rc1.0.20260618074816-86c1172bec37), v2.5.16
# (v1.4.0-rc1.0.20260617221605-f871cf92a026) and v2.4.9, so those run only from binaries
# supplied by hand (KUBECC_FABRIC_HOME, below).
FABRIC_DEFAULT_VERSION=v3.1.1
fabric_module_version() {
	case "$1" in
	v3.1.1) echo v1.4.0-rc1.0.20250510200036-435a7f1a780a ;;
	*) return 1 ;;
	esac
}

# fabric_select VERSION: sets FABRIC_VERSION (no "v": Fabric's own spelling, used in image
# tags), FABRIC_MODULE_VERSION (empty when the proxy does not serve VERSION) and
# FABRIC_HOME (bin/ and config/). KUBECC_FABRIC_HOME names a folder of binaries and
# sampleconfig built elsewhere, for a version the proxy does not serve; install.sh then
# only checks it.
fabric_select() {
	FABRIC_VERSION="${1#v}"
	FABRIC_MODULE_VERSION=$(fabric_module_version "v$FABRIC_VERSION") || FABRIC_MODULE_VERSION=""
	FABRIC_HOME="${KUBECC_FABRIC_HOME:-$KUBECC_CACHE/fabric-$FABRIC_VERSION}"
}
fabric_select "${KUBECC_FABRIC_VERSION:-$FABRIC_DEFAULT_VERSION}"
# Further releases whose core scenarios e2e/run-e2e.sh runs after the full suite on the
# default: none while the proxy serves no second release (v2.5.16 would go here).
FABRIC_CORE_VERSIONS=()

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

# "${DETACH[@]}" CMD... &: runs CMD in a new session with no descriptor of this shell
# beyond stdio (redirect those at the call), so that a lock held around a harness
# command (flock) does not live on in the daemons it starts; $! is the daemon's pid
# (setsid and bash exec, they do not fork). The 2>/dev/null goes on each close: bash
# keeps a redirected loop's fd 2 in a spare descriptor, which the loop would close.
# shellcheck disable=SC2016,SC2034 # expanded by the inner bash; used by the scripts
DETACH=(setsid bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -le 2 ] || eval "exec $fd>&-" 2>/dev/null; done; exec "$@"' detach)
