#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs everything the local e2e cluster needs, idempotently, into $KUBECC_CACHE:
#   - Debian packages containerd, runc, containernetworking-plugins, docker-registry:
#     `apt-get download` + `dpkg -x` into $KUBECC_CACHE/debroot (no daemons started, nothing
#     installed system-wide; Debian's docker-registry package would otherwise start its own
#     registry on :5000 through its init script).
#   - host tools iptables, iproute2, openssl, libseccomp2 (runc links it): `apt-get install`.
#   - kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl built from
#     k8s.io/kubernetes $K8S_VERSION, and etcd $ETCD_VERSION, with `go build` in throwaway
#     modules; binaries cached in $KUBECC_CACHE/k8s-$K8S_VERSION and $KUBECC_CACHE/etcd-$ETCD_VERSION.
# Prints progress to stderr. Environment: KUBECC_CACHE, K8S_VERSION, ETCD_VERSION (see lib.sh),
# BUILD_PARALLEL (go build -p, default 2).
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

BUILD_PARALLEL="${BUILD_PARALLEL:-2}"
# Debian bookworm packages, pinned by upstream version (the Debian revision may move with
# security updates; the upstream version of a stable release does not).
DEB_PINS=(
	"containerd 1.6.20~ds1-"
	"runc 1.1.5+ds1-"
	"containernetworking-plugins 1.1.1+ds1-"
	"docker-registry 2.8.2+ds1-"
)
HOST_PKGS=(iptables iproute2 openssl libseccomp2 procps util-linux curl ca-certificates shellcheck)
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

DEBROOT="$KUBECC_CACHE/debroot"
K8S_DIR="$KUBECC_CACHE/k8s-$K8S_VERSION"
ETCD_DIR="$KUBECC_CACHE/etcd-$ETCD_VERSION"

start=$SECONDS
mkdir -p "$KUBECC_CACHE"

apt_updated=
apt_update_once() {
	[ -z "$apt_updated" ] || return 0
	log "apt-get update"
	apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
	apt_updated=1
}

# ---- host packages ----
missing=()
for p in "${HOST_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	apt_update_once
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# ---- Debian packages unpacked privately ----
mkdir -p "$DEBROOT" "$KUBECC_CACHE/debs"
for pin in "${DEB_PINS[@]}"; do
	pkg=${pin%% *} want=${pin#* }
	if [ -f "$DEBROOT/.stamp-$pkg" ]; then
		continue
	fi
	apt_update_once
	ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
	case "$ver" in
	"$want"*) ;;
	*) die "apt candidate for $pkg is '$ver', expected $want*" ;;
	esac
	log "apt-get download $pkg=$ver"
	deb="$KUBECC_CACHE/debs/${pkg}_${ver//:/%3a}_$(dpkg --print-architecture).deb"
	if [ ! -f "$deb" ]; then
		# (apt-get warns that root downloads unsandboxed: harmless)
		(cd "$KUBECC_CACHE/debs" && apt-get -o DPkg::Lock::Timeout=300 download -qq "$pkg=$ver" 2>&1) | sed '/unsandboxed/d' >&2
	fi
	[ -f "$deb" ] || die "download of $pkg=$ver failed (expected $deb)"
	dpkg -x "$deb" "$DEBROOT"
	echo "$ver" >"$DEBROOT/.stamp-$pkg"
done
for f in usr/bin/containerd usr/bin/containerd-shim-runc-v2 usr/sbin/runc usr/bin/docker-registry usr/lib/cni/bridge usr/lib/cni/host-local usr/lib/cni/loopback; do
	[ -x "$DEBROOT/$f" ] || die "missing $DEBROOT/$f"
done
log "debian packages ready in $DEBROOT ($((SECONDS - start))s)"

# ---- Go builds ----
command -v go >/dev/null || die "go is not installed"
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

# quiet_go: drops the Go tool's per-module download lines (hundreds on a cold cache).
quiet_go() { sed -u -e '/^go: downloading /d' -e '/^go: finding module /d'; }

have_all() { # DIR BIN...
	local d=$1 b; shift
	for b in "$@"; do [ -x "$d/$b" ] || return 1; done
}

build_k8s() {
	local src="$KUBECC_CACHE/src/k8s-$K8S_VERSION" t0=$SECONDS
	local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
	local staging="v0.${K8S_VERSION#v1.}"
	mkdir -p "$src"
	log "k8s $K8S_VERSION: fetching module"
	local gomod
	gomod=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | awk -F'"' '/"GoMod":/ {print $4}')
	[ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
	{
		echo "module kubecc.local/k8sbuild"
		echo
		grep -E '^(go|godebug) ' "$gomod"
		echo
		echo "require k8s.io/kubernetes $K8S_VERSION"
		echo
		echo "replace ("
		# every staging module that k8s.io/kubernetes requires (as v0.0.0 => ./staging/...)
		awk '/=> \.\/staging\// {print $1}' "$gomod" | sort -u | while read -r m; do
			if grep -qE "^[[:space:]]+$m v0\.0\.0" "$gomod"; then
				printf '\t%s => %s %s\n' "$m" "$m" "$staging"
			fi
		done
		echo ")"
	} >"$src/go.mod"
	log "k8s $K8S_VERSION: $(grep -c ' => ' "$src/go.mod") staging modules replaced by $staging"
	local pkg="k8s.io/component-base/version" cpkg="k8s.io/client-go/pkg/version" ld="-s -w" kv
	for kv in "gitVersion=$K8S_VERSION" "gitMajor=1" "gitMinor=$minor" "gitTreeState=clean" "buildDate=1970-01-01T00:00:00Z"; do
		ld="$ld -X $pkg.$kv -X $cpkg.$kv"
	done
	local pkgs=() b
	for b in "${K8S_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	local out="$K8S_DIR.tmp.$$"
	rm -rf "$out"; mkdir -p "$out"
	log "k8s $K8S_VERSION: go build -p $BUILD_PARALLEL ${K8S_BINS[*]} (about 7 min cold on 2 cores)"
	(cd "$src" && go build -p "$BUILD_PARALLEL" -trimpath -ldflags "$ld" -o "$out/" "${pkgs[@]}" 2>&1) | quiet_go >&2
	have_all "$out" "${K8S_BINS[@]}" || die "k8s build incomplete"
	rm -rf "$K8S_DIR"; mv "$out" "$K8S_DIR"
	log "k8s $K8S_VERSION: built in $((SECONDS - t0))s"
}

build_etcd() {
	local src="$KUBECC_CACHE/src/etcd-$ETCD_VERSION" t0=$SECONDS
	mkdir -p "$src"
	cat >"$src/go.mod" <<EOF
module kubecc.local/etcdbuild

go 1.24.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
	local out="$ETCD_DIR.tmp.$$"
	rm -rf "$out"; mkdir -p "$out"
	log "etcd $ETCD_VERSION: go build"
	# The server module's root package is etcd's main package.
	(cd "$src" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" 2>&1 &&
		go build -p "$BUILD_PARALLEL" -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3 2>&1) | quiet_go >&2
	[ -x "$out/etcd" ] || die "etcd build failed"
	rm -rf "$ETCD_DIR"; mv "$out" "$ETCD_DIR"
	log "etcd $ETCD_VERSION: built in $((SECONDS - t0))s"
}

if have_all "$ETCD_DIR" etcd; then
	log "etcd $ETCD_VERSION: cached in $ETCD_DIR"
else
	build_etcd
fi
if have_all "$K8S_DIR" "${K8S_BINS[@]}"; then
	log "k8s $K8S_VERSION: cached in $K8S_DIR"
else
	build_k8s
fi

log "install done in $((SECONDS - start))s"
