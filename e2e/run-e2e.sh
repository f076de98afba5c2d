#!/usr/bin/env bash
# Runs the e2e suite on a fresh Fabric network over the real cluster and registry, then
# the core scenarios on each further Fabric release of FABRIC_CORE_VERSIONS (lib.sh), and
# stops everything afterwards (KEEP=1 leaves the harness up). KUBECC_FABRIC_VERSION picks
# the release of the full suite's host network.
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
clean_chaincodes() {
	"$KUBECTL" -n "${KUBECC_NAMESPACE:-kubecc}" delete pods,jobs,secrets -l app.kubernetes.io/managed-by=kubecc \
		--grace-period=0 --force --wait=true >/dev/null 2>&1 || true
}
clean_chaincodes
cd "$REPO_ROOT"
status=0
go test -tags e2e -count=1 -v -timeout 40m ./e2e/ 2>&1 | tee "$KUBECC_E2E_LOGS/e2e-test.log" || status=$?

# The core scenarios on each further Fabric release (lib.sh): source and image package
# installs, invoke/query, relaunch after pod deletion, upgrade, peer SIGTERM (TestE2E), and
# the serverless wake-up, on a host network recreated with that release.
for v in "${FABRIC_CORE_VERSIONS[@]}"; do
	t=$SECONDS
	log "e2e: core scenarios on Fabric $v"
	bash "$REPO_ROOT/e2e/fabric/down.sh" >/dev/null 2>&1 || true
	clean_chaincodes
	if KUBECC_FABRIC_VERSION=$v bash "$REPO_ROOT/e2e/up.sh"; then
		KUBECC_FABRIC_VERSION=$v go test -tags e2e -count=1 -v -timeout 20m -run 'TestE2E|TestServerless/1' ./e2e/ 2>&1 |
			tee "$KUBECC_E2E_LOGS/e2e-test-$v.log" || status=$?
	else
		status=1
	fi
	log "e2e: Fabric $v pass took $((SECONDS - t)) s"
done
# A kept harness runs the selected release again, as after the full suite.
if [ "${KEEP:-0}" = 1 ] && [ "${#FABRIC_CORE_VERSIONS[@]}" -gt 0 ]; then
	bash "$REPO_ROOT/e2e/up.sh" || status=1
fi
[ "$status" -eq 0 ] # not `exit "$status"`: shellcheck would call the EXIT trap unreachable
