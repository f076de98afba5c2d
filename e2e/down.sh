#!/usr/bin/env bash
# Stops everything e2e/up.sh started, by recorded pid, and leaves nothing running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The peers first: on SIGTERM they stop their run hooks, which delete their pods.
bash "$REPO_ROOT/e2e/incluster/down.sh" || log "incluster down reported an error"
bash "$REPO_ROOT/e2e/fabric/down.sh" || log "fabric down reported an error"
bash "$REPO_ROOT/e2e/cluster/down.sh"
