#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Kills the e2e cluster's kube-apiserver (SIGKILL: a crash; a graceful stop can take
# longer than a test should wait, as the server drains its watches), keeps it down for
# SECONDS (default 5), then starts it again with the same command line and waits until
# it is ready. Used by the e2e suite.
set -euo pipefail
# shellcheck source=down.sh
. "$(dirname "${BASH_SOURCE[0]}")/down.sh"

down_for="${1:-5}"
pid=$(pid_of kube-apiserver) || die "kube-apiserver is not running (e2e/cluster/up.sh)"
mapfile -d '' args <"/proc/$pid/cmdline"
kill -KILL "$pid"
wait_gone 10 "$pid" || die "kube-apiserver $pid did not stop"
log "kube-apiserver stopped; down for ${down_for}s"
sleep "$down_for"
logf="$KUBECC_E2E_LOGS/kube-apiserver.log"
"${DETACH[@]}" "${args[@]}" >>"$logf" 2>&1 </dev/null &
echo $! >"$PID_DIR/kube-apiserver.pid"
port=$(printf '%s\n' "${args[@]}" | sed -n 's/^--secure-port=//p')
end=$((SECONDS + 60))
until curl -fsS --max-time 2 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key" \
	"https://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
	[ -n "$(pid_of kube-apiserver || true)" ] || die "kube-apiserver exited; see $logf"
	[ "$SECONDS" -lt "$end" ] || die "kube-apiserver not ready after 60 s; see $logf"
	sleep 0.2
done
log "kube-apiserver ready again"
