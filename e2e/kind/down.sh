#!/usr/bin/env bash
# Deletes the kind cluster, the local registry container and the Go cache volume that
# e2e/kind/up.sh made. Needs Docker and kind. KEEP_REGISTRY=1 keeps the registry (and
# its images) and the Go cache, for a faster next up.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need docker kind
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
	kind delete cluster --name "$CLUSTER_NAME"
fi
if [ "${KEEP_REGISTRY:-0}" != 1 ]; then
	if docker inspect "$REG_NAME" >/dev/null 2>&1; then
		docker rm -f "$REG_NAME" >/dev/null
		log "registry container $REG_NAME removed"
	fi
	if docker volume inspect "$GO_CACHE_VOLUME" >/dev/null 2>&1; then
		docker volume rm "$GO_CACHE_VOLUME" >/dev/null
		log "Go cache volume $GO_CACHE_VOLUME removed"
	fi
fi
