#!/usr/bin/env bash
# Builds stock Fabric binaries (peer, orderer, configtxgen, cryptogen, osnadmin) from the
# Go module proxy into $KUBECC_CACHE/fabric-$FABRIC_VERSION/{bin,config}, for the release
# KUBECC_FABRIC_VERSION names (default and pins: lib.sh). Idempotent. With
# KUBECC_FABRIC_HOME it builds nothing and only checks that folder.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

BINS=(peer orderer configtxgen cryptogen osnadmin)
CONFIGS=(core.yaml orderer.yaml configtx.yaml)
FABRIC_COMMIT="${FABRIC_MODULE_VERSION##*-}"
BUILD_P="${BUILD_P:-2}"

installed() {
	local f
	for f in "${BINS[@]}"; do [ -x "$FABRIC_HOME/bin/$f" ] || return 1; done
	for f in "${CONFIGS[@]}"; do [ -s "$FABRIC_HOME/config/$f" ] || return 1; done
}

if installed; then
	log "fabric $FABRIC_VERSION already installed in $FABRIC_HOME"
	exit 0
fi
[ -z "${KUBECC_FABRIC_HOME:-}" ] ||
	die "KUBECC_FABRIC_HOME=$KUBECC_FABRIC_HOME lacks bin/{${BINS[*]}} or config/{${CONFIGS[*]}}"
[ -n "$FABRIC_MODULE_VERSION" ] ||
	die "the Go module proxy serves no Fabric v$FABRIC_VERSION here (built versions: e2e/lib.sh); for another release set KUBECC_FABRIC_HOME to a folder with its binaries in bin/ and its sampleconfig in config/"

command -v go >/dev/null || die "go not found"
t0=$SECONDS
mkdir -p "$KUBECC_CACHE"
work=$(mktemp -d "$KUBECC_CACHE/fabric-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat >"$work/go.mod" <<GOMOD
module kubecc.local/fabricbin

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

log "fabric: go mod tidy for github.com/hyperledger/fabric@$FABRIC_MODULE_VERSION"
(cd "$work" && GOFLAGS=-mod=mod go mod tidy)
log "fabric: tidy done in $((SECONDS - t0))s"

ldflags="-X github.com/hyperledger/fabric/common/metadata.Version=$FABRIC_VERSION"
ldflags+=" -X github.com/hyperledger/fabric/common/metadata.CommitSHA=$FABRIC_COMMIT"
stage="$work/out"
mkdir -p "$stage/bin" "$stage/config"
for b in "${BINS[@]}"; do
	tb=$SECONDS
	(cd "$work" && go build -p "$BUILD_P" -trimpath -ldflags "$ldflags" -o "$stage/bin/$b" "github.com/hyperledger/fabric/cmd/$b")
	log "fabric: built $b in $((SECONDS - tb))s"
done

moddir=$(cd "$work" && go list -m -f '{{.Dir}}' github.com/hyperledger/fabric)
for f in "${CONFIGS[@]}"; do
	cp "$moddir/sampleconfig/$f" "$stage/config/$f"
done
chmod -R u+w "$stage/config"

rm -rf "$FABRIC_HOME"
mkdir -p "$(dirname "$FABRIC_HOME")"
mv "$stage" "$FABRIC_HOME"
log "fabric $FABRIC_VERSION installed in $FABRIC_HOME in $((SECONDS - t0))s"
