#!/usr/bin/env bash
# Stops the peer and the orderer (SIGTERM, SIGKILL after 10 s) and removes the network
# state in $KUBECC_E2E_ROOT/fabric, so the next up.sh starts a fresh network. Idempotent.
# Logs in $KUBECC_E2E_LOGS are kept.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# stray_nodes: the peer and orderer of this network whose pid files are gone (e2e/cluster/
# down.sh removes the pids folder the two share with the cluster), told apart from other
# processes by the FABRIC_CFG_PATH start_daemon gave them. They would keep the ports, and
# the next network would talk to the old nodes with new certificates.
stray_nodes() {
	local p exe
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		case "${exe##*/}" in
		orderer) ;;
		peer) tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q ' node start' || continue ;; # not the peer CLI
		*) continue ;;
		esac
		tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qxF "FABRIC_CFG_PATH=$FABRIC_CONFIG" && echo "${p#/proc/}"
	done
	return 0
}

t0=$(now_ns)
stop_pid peer 10
stop_pid orderer 10
for pid in $(stray_nodes); do
	log "stopping $(basename "$(readlink "/proc/$pid/exe")") pid $pid, whose pid file was gone"
	echo "$pid" >"$FABRIC_PIDS/stray.pid"
	stop_pid stray 10
done
rm -rf "$FABRIC_DIR"
log "fabric network down in $(ms_since "$t0") ms"
