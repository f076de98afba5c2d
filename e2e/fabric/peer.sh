#!/usr/bin/env bash
# Controls only the peer of the network that up.sh started, keeping its data:
#   peer.sh start|stop|kill|restart|status
# start uses the configuration and environment up.sh wrote ($KUBECC_E2E_ROOT/fabric/
# config/core.yaml and peer.env); stop sends SIGTERM and waits up to 15 s (then SIGKILL);
# kill sends SIGKILL. status exits 0 when running, 3 when not.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# serving: the peer answers an admin request (its operations endpoint is up well before
# its gRPC server).
serving() {
	(
		# shellcheck source=/dev/null
		. "$FABRIC_DIR/env"
		peer channel list
	) >/dev/null 2>&1
}

usage() { die "usage: $0 start|stop|kill|restart|status"; }

start() {
	if pid_alive peer; then
		log "peer already running (pid $(cat "$FABRIC_PIDS/peer.pid"))"
		return 0
	fi
	[ -f "$FABRIC_DIR/peer.env" ] || die "no network state in $FABRIC_DIR: run up.sh first"
	local t0
	t0=$(now_ns)
	start_daemon peer "$FABRIC_DIR/peer.env" "$FABRIC_BIN/peer" node start
	local end=$((SECONDS + 60))
	until http_ok "http://$PEER_OPS/healthz" && serving; do
		pid_alive peer || die "peer exited; see $KUBECC_E2E_LOGS/peer.log"
		[ "$SECONDS" -lt "$end" ] || die "peer not healthy after 60s; see $KUBECC_E2E_LOGS/peer.log"
		sleep 0.1
	done
	log "peer started (pid $(cat "$FABRIC_PIDS/peer.pid")) in $(ms_since "$t0") ms"
}

stop() {
	local sig=$1 t0
	if ! pid_alive peer; then
		rm -f "$FABRIC_PIDS/peer.pid"
		log "peer not running"
		return 0
	fi
	t0=$(now_ns)
	if [ "$sig" = KILL ]; then
		kill -KILL "$(cat "$FABRIC_PIDS/peer.pid")" 2>/dev/null || true
	fi
	stop_pid peer 15
	log "peer stopped (SIG$sig) in $(ms_since "$t0") ms"
}

case "${1:-}" in
start) start ;;
stop) stop TERM ;;
kill) stop KILL ;;
restart)
	stop TERM
	start
	;;
status)
	if pid_alive peer; then
		echo "peer running (pid $(cat "$FABRIC_PIDS/peer.pid"))"
	else
		echo "peer not running"
		exit 3
	fi
	;;
*) usage ;;
esac
