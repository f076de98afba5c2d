#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the Go toolchain image that in-cluster build Jobs run in, from this machine's
# static Go toolchain (`go env GOROOT`, e.g. /usr/local/go), without a Docker daemon, and
# pushes it to the harness registry as $REGISTRY_ADDR/toolchains/golang:<go version>
# (e.g. 127.0.0.1:5000/toolchains/golang:1.26.8). See e2e/tools/toolimage for its layout.
# Skips the build when the registry already has that tag. Progress goes to stderr; the
# last line on stdout is name@digest. Needs the registry to be up (e2e/cluster/up.sh).
#   TOOLIMAGE_FORCE=1  build and push even when the tag exists (same toolchain: same digest)
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

t0=$SECONDS
command -v go >/dev/null || die "go is not installed"
GOROOT_SRC=$(go env GOROOT)
GO_VERSION=$(go env GOVERSION)
GO_VERSION=${GO_VERSION#go}
REPO="toolchains/golang"
REF="$REGISTRY_ADDR/$REPO:$GO_VERSION"
TOOLS_BIN="$KUBECC_CACHE/tools/bin"

curl -fsS --max-time 3 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 ||
	die "registry $REGISTRY_ADDR does not answer: start it with e2e/cluster/up.sh"

# existing_digest: the digest the registry holds under the tag, or nothing.
existing_digest() {
	curl -fsS --max-time 5 -o /dev/null -D - -I \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-H 'Accept: application/vnd.oci.image.index.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"http://$REGISTRY_ADDR/v2/$REPO/manifests/$GO_VERSION" 2>/dev/null |
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
log "toolimage: built the tool (+$((SECONDS - t0))s); packing $GOROOT_SRC as $REF"

out=$("$TOOLS_BIN/toolimage" -goroot "$GOROOT_SRC" -ref "$REF") || die "building or pushing $REF failed"
log "toolimage: done in $((SECONDS - t0))s"
echo "$out" | tail -n1
