#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds a toolchain image from this machine's toolchain, without a Docker daemon, and
# pushes it to the harness registry (e2e/tools/toolimage describes the layouts):
#   toolimage.sh [go]  Go, for in-cluster Go build Jobs: the static `go env GOROOT`
#                      (e.g. /usr/local/go) as $REGISTRY_ADDR/toolchains/golang:<go version>
#   toolimage.sh node  Node.js and npm, for Node.js build Jobs and as chaincode's runtime
#                      base: the `node` on PATH as $REGISTRY_ADDR/toolchains/node:<node version>
# Skips the build when the registry already has that tag. Progress goes to stderr; the
# last line on stdout is name@digest. Needs the registry to be up (e2e/cluster/up.sh).
#   TOOLIMAGE_FORCE=1  build and push even when the tag exists (same toolchain: same digest)
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

t0=$SECONDS
lang=${1:-go}
case $lang in
go)
	command -v go >/dev/null || die "go is not installed"
	SRC=$(go env GOROOT)
	VERSION=$(go env GOVERSION)
	VERSION=${VERSION#go}
	REPO="toolchains/golang"
	ARGS=(-lang go -goroot "$SRC")
	;;
node)
	SRC=$(command -v node) || die "node is not installed"
	VERSION=$(node --version)
	VERSION=${VERSION#v}
	REPO="toolchains/node"
	ARGS=(-lang node -node "$SRC")
	;;
*) die "usage: toolimage.sh [go|node]" ;;
esac
REF="$REGISTRY_ADDR/$REPO:$VERSION"
TOOLS_BIN="$KUBECC_CACHE/tools/bin"

curl -fsS --max-time 3 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 ||
	die "registry $REGISTRY_ADDR does not answer: start it with e2e/cluster/up.sh"

# existing_digest: the digest the registry holds under the tag, or nothing.
existing_digest() {
	curl -fsS --max-time 5 -o /dev/null -D - -I \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-H 'Accept: application/vnd.oci.image.index.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"http://$REGISTRY_ADDR/v2/$REPO/manifests/$VERSION" 2>/dev/null |
		tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" {print $2}'
}

if [ -z "${TOOLIMAGE_FORCE:-}" ]; then
	d=$(existing_digest || true)
	if [ -n "$d" ]; then
		log "toolimage: $REF already in the registry"
		echo "$REGISTRY_ADDR/$REPO@$d"
		exit 0
	fi
fi

log "toolimage: building e2e/tools/toolimage"
# A private copy of the main module's go.mod/go.sum (-modfile), so the build may add go.sum
# lines without touching the work tree (its own copy: up.sh uses tools/mod concurrently).
mod="$KUBECC_CACHE/tools/mod-toolimage"
mkdir -p "$mod" "$TOOLS_BIN"
cp "$REPO_ROOT/go.mod" "$mod/tools.mod"
cp "$REPO_ROOT/go.sum" "$mod/tools.sum" 2>/dev/null || : >"$mod/tools.sum"
(cd "$REPO_ROOT" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -modfile="$mod/tools.mod" -trimpath -ldflags="-s -w" \
	-o "$TOOLS_BIN/toolimage.new" ./e2e/tools/toolimage) >&2 || die "building e2e/tools/toolimage failed"
mv -f "$TOOLS_BIN/toolimage.new" "$TOOLS_BIN/toolimage"
log "toolimage: built the tool (+$((SECONDS - t0))s); packing $SRC as $REF"

out=$("$TOOLS_BIN/toolimage" "${ARGS[@]}" -ref "$REF") || die "building or pushing $REF failed"
log "toolimage: done in $((SECONDS - t0))s"
echo "$out" | tail -n1
