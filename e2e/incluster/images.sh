#!/usr/bin/env bash
# Builds static (CGO_ENABLED=0) Fabric peer and orderer binaries and packs them into two
# images shaped like the official ones, pushed to the harness registry without a daemon:
#   $REGISTRY_ADDR/fabric/peer:$FABRIC_VERSION     /usr/local/bin/peer
#   $REGISTRY_ADDR/fabric/orderer:$FABRIC_VERSION  /usr/local/bin/orderer
# both with Fabric's sampleconfig in /etc/hyperledger/fabric (FABRIC_CFG_PATH), user 1000,
# /tmp (1777) and /var/hyperledger/production owned by 1000. No shell, no Go, no kubecc.
# Binaries and sampleconfig are cached in $KUBECC_CACHE/fabric-$FABRIC_VERSION-static;
# an image whose digest the registry already serves is not packed again. Idempotent.
# Prints the two name@digest lines last on stdout.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# Only the default Fabric release runs in the cluster: its images come from the module
# proxy, whatever release KUBECC_FABRIC_VERSION gives the host network.
export KUBECC_FABRIC_VERSION="$FABRIC_DEFAULT_VERSION" KUBECC_FABRIC_HOME=
fabric_select "$FABRIC_DEFAULT_VERSION"

STATIC_HOME="$KUBECC_CACHE/fabric-$FABRIC_VERSION-static"
BINS=(peer orderer)
CONFIGS=(core.yaml orderer.yaml configtx.yaml msp)
FABRIC_COMMIT="${FABRIC_MODULE_VERSION##*-}"
BUILD_P="${BUILD_P:-2}"
IMAGE_PREFIX="${FABRIC_IMAGE_PREFIX:-$REGISTRY_ADDR/fabric}"
TOOLS_BIN="$KUBECC_CACHE/tools/bin"
t0=$SECONDS

installed() {
	local f
	for f in "${BINS[@]}"; do [ -x "$STATIC_HOME/bin/$f" ] || return 1; done
	for f in "${CONFIGS[@]}"; do [ -e "$STATIC_HOME/config/$f" ] || return 1; done
}

# ---- static binaries (throwaway module, as e2e/fabric/install.sh) ----
if installed; then
	log "images: static fabric $FABRIC_VERSION binaries cached in $STATIC_HOME"
else
	command -v go >/dev/null || die "go not found"
	mkdir -p "$KUBECC_CACHE"
	work=$(mktemp -d "$KUBECC_CACHE/fabric-static-build.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	cat >"$work/go.mod" <<GOMOD
module kubecc.local/fabricstatic

go 1.24.2

require github.com/hyperledger/fabric $FABRIC_MODULE_VERSION
GOMOD
	{
		echo '//go:build tools'
		echo
		echo 'package tools'
		echo
		echo 'import ('
		for b in "${BINS[@]}"; do echo "	_ \"github.com/hyperledger/fabric/cmd/$b\""; done
		echo ')'
	} >"$work/tools.go"
	log "images: go mod tidy for github.com/hyperledger/fabric@$FABRIC_MODULE_VERSION (about 75 s with an empty module cache)"
	(cd "$work" && GOFLAGS=-mod=mod go mod tidy)
	log "images: tidy done (+$((SECONDS - t0))s)"
	ldflags="-s -w -X github.com/hyperledger/fabric/common/metadata.Version=$FABRIC_VERSION"
	ldflags+=" -X github.com/hyperledger/fabric/common/metadata.CommitSHA=$FABRIC_COMMIT"
	stage="$work/out"
	mkdir -p "$stage/bin" "$stage/config"
	for b in "${BINS[@]}"; do
		tb=$SECONDS
		log "images: building static $b (CGO_ENABLED=0; about a minute each on 2 cores)"
		(cd "$work" && CGO_ENABLED=0 go build -p "$BUILD_P" -trimpath -ldflags "$ldflags" -o "$stage/bin/$b" "github.com/hyperledger/fabric/cmd/$b")
		if file "$stage/bin/$b" 2>/dev/null | grep -q 'dynamically linked'; then
			die "$b is dynamically linked"
		fi
		log "images: built $b in $((SECONDS - tb))s ($(du -h "$stage/bin/$b" | cut -f1))"
	done
	moddir=$(cd "$work" && go list -m -f '{{.Dir}}' github.com/hyperledger/fabric)
	for f in "${CONFIGS[@]}"; do
		cp -R "$moddir/sampleconfig/$f" "$stage/config/$f"
	done
	chmod -R u+w,go+rX "$stage/config"
	rm -rf "$STATIC_HOME"
	mv "$stage" "$STATIC_HOME"
	log "images: static binaries in $STATIC_HOME (+$((SECONDS - t0))s)"
fi

# ---- the packing tool ----
tool="$TOOLS_BIN/fabricimage"
if [ ! -x "$tool" ] || [ "$REPO_ROOT/e2e/tools/fabricimage/main.go" -nt "$tool" ] ||
	[ -n "$(find "$REPO_ROOT/pkg/image" -newer "$tool" -name '*.go' 2>/dev/null | head -n1)" ]; then
	log "images: building e2e/tools/fabricimage"
	mod="$KUBECC_CACHE/tools/mod-fabricimage"
	mkdir -p "$mod" "$TOOLS_BIN"
	# A private copy of go.mod/go.sum (-modfile): the build may add go.sum lines without
	# touching the work tree.
	cp "$REPO_ROOT/go.mod" "$mod/tools.mod"
	cp "$REPO_ROOT/go.sum" "$mod/tools.sum" 2>/dev/null || : >"$mod/tools.sum"
	(cd "$REPO_ROOT" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -modfile="$mod/tools.mod" -trimpath \
		-o "$tool.new" ./e2e/tools/fabricimage) && mv -f "$tool.new" "$tool"
fi

curl -fsS --max-time 3 "http://$REGISTRY_ADDR/v2/" >/dev/null || die "no registry at $REGISTRY_ADDR: run e2e/up.sh (or e2e/cluster/up.sh) first"

# registry_digest REPO TAG: the digest the registry serves for REPO:TAG, or nothing.
registry_digest() {
	curl -fsSI --max-time 3 -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$REGISTRY_ADDR/v2/$1/manifests/$2" 2>/dev/null |
		tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

# The stamp records the inputs (binary, config, tool) and the digest pushed for them.
for b in "${BINS[@]}"; do
	ref="$IMAGE_PREFIX/$b:$FABRIC_VERSION"
	repo="${ref#*/}"
	repo="${repo%:*}"
	inputs=$(cat "$STATIC_HOME/bin/$b" "$tool" <(tar -C "$STATIC_HOME/config" --sort=name --mtime=@0 --owner=0 --group=0 -cf - .) | sha256sum | cut -d' ' -f1)
	stamp="$STATIC_HOME/$b.image"
	if [ -f "$stamp" ] && read -r s_inputs s_ref <"$stamp" && [ "$s_inputs" = "$inputs" ] &&
		[ "${s_ref%@*}" = "${ref%:*}" ] && [ "$(registry_digest "$repo" "$FABRIC_VERSION")" = "${s_ref#*@}" ]; then
		log "images: $s_ref already in the registry"
		echo "$s_ref"
		continue
	fi
	tb=$SECONDS
	log "images: packing and pushing $ref"
	out=$("$tool" -name "$b" -binary "$STATIC_HOME/bin/$b" -config "$STATIC_HOME/config" -ref "$ref" -version "$FABRIC_VERSION")
	out=$(tail -n1 <<<"$out")
	echo "$inputs $out" >"$stamp"
	log "images: pushed $out in $((SECONDS - tb))s"
	echo "$out"
done
log "images: done in $((SECONDS - t0))s"
