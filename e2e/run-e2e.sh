#!/usr/bin/env bash
# Runs the e2e suite on a fresh Fabric network over the real cluster and registry, and
# stops everything afterwards (KEEP=1 leaves the harness up).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cleanup() {
	[ "${KEEP:-0}" = 1 ] && return 0
	bash "$REPO_ROOT/e2e/down.sh" || true
}
trap cleanup EXIT

# A fresh channel each run: the scenarios install and commit fixed names.
bash "$REPO_ROOT/e2e/fabric/down.sh" >/dev/null 2>&1 || true
bash "$REPO_ROOT/e2e/up.sh"
# The peer as a Pod (TestInCluster): a fresh in-cluster network each run.
bash "$REPO_ROOT/e2e/incluster/down.sh" >/dev/null 2>&1 || true
bash "$REPO_ROOT/e2e/incluster/up.sh"
# and no chaincode objects of an earlier network (a killed peer's run hooks cannot clean up).
# shellcheck source=/dev/null
. "$KUBECC_E2E_ROOT/cluster/env"
"$KUBECTL" -n "${KUBECC_NAMESPACE:-kubecc}" delete pods,jobs,secrets -l app.kubernetes.io/managed-by=kubecc \
	--grace-period=0 --force --wait=true >/dev/null 2>&1 || true
cd "$REPO_ROOT"
go test -tags e2e -count=1 -v -timeout 40m ./e2e/ 2>&1 | tee "$KUBECC_E2E_LOGS/e2e-test.log"
