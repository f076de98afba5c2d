#!/usr/bin/env bash
# Removes the in-cluster Fabric network of e2e/incluster/up.sh: deletes namespace
# fabric-incluster (peer, orderer, chaincode Pods, Jobs and Secrets), waiting for its
# Pods to go, then the state folder with the hostPath ledgers, crypto material and env
# file. Leaves the cluster, the registry and the host-process network alone. Idempotent.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

NS=fabric-incluster
STATE="$KUBECC_E2E_ROOT/incluster"
t0=$SECONDS

if [ -f "$KUBECC_E2E_ROOT/cluster/env" ]; then
	# shellcheck source=/dev/null
	. "$KUBECC_E2E_ROOT/cluster/env"
	if "$KUBECTL" get --raw /readyz >/dev/null 2>&1; then
		# Left by an interrupted TestInCluster (it deletes them itself); scoped to $NS.
		"$KUBECTL" delete validatingadmissionpolicybinding,validatingadmissionpolicy kubecc-incluster-e2e-creator \
			--ignore-not-found >/dev/null 2>&1 || true
		if "$KUBECTL" get namespace "$NS" >/dev/null 2>&1; then
			log "incluster: deleting namespace $NS"
			# The peer gets SIGTERM first (its run hooks delete their chaincode); the
			# namespace is gone once all its Pods are.
			"$KUBECTL" delete namespace "$NS" --wait=true --timeout=180s >/dev/null
		fi
	else
		log "incluster: the cluster does not answer; only removing $STATE"
	fi
fi
# The hostPath ledgers (files owned by uid 1000), crypto material, env.
rm -rf "$STATE"
log "incluster: down in $((SECONDS - t0))s"
