#!/usr/bin/env bash
# Stops the peer and the orderer (SIGTERM, SIGKILL after 10 s) and removes the network
# state in $KUBECC_E2E_ROOT/fabric, so the next up.sh starts a fresh network. Idempotent.
# Logs in $KUBECC_E2E_LOGS are kept.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

t0=$(now_ns)
stop_pid peer 10
stop_pid orderer 10
rm -rf "$FABRIC_DIR"
log "fabric network down in $(ms_since "$t0") ms"
