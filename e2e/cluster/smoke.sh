#!/usr/bin/env bash
# Smoke test of the cluster started by up.sh:
#   1. a Pod running the pause image (127.0.0.1:5000/pause:3.10) must become Running/Ready;
#   2. a Job running e2e/tools/netcheck (pushed to the local registry) must connect to a TCP
#      listener on the host at $NODE_IP (as chaincode pods dial a peer there) and Complete.
# Prints the timings, then deletes what it created.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ENV_FILE="$KUBECC_E2E_ROOT/cluster/env"
[ -f "$ENV_FILE" ] || die "no $ENV_FILE: run e2e/cluster/up.sh first"
# shellcheck source=/dev/null
. "$ENV_FILE"

TOOLS_BIN="$KUBECC_CACHE/tools/bin"
NS=default
POD=kubecc-smoke-pause
JOB=kubecc-smoke-dial
WORK=$(mktemp -d)
listener=
k() { "$KUBECTL" --request-timeout=30s "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }

cleanup() {
	[ -z "$listener" ] || kill "$listener" 2>/dev/null || true
	k delete pod "$POD" -n "$NS" --ignore-not-found --grace-period=1 --wait=true >/dev/null 2>&1 || true
	k delete job "$JOB" -n "$NS" --ignore-not-found --cascade=foreground --wait=true >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# The test image: the static netcheck binary in a one-layer image (built by up.sh).
if [ ! -x "$TOOLS_BIN/netcheck" ] || [ ! -x "$TOOLS_BIN/pauseimage" ]; then
	die "missing $TOOLS_BIN/netcheck or pauseimage: run e2e/cluster/up.sh"
fi
image=$("$TOOLS_BIN/pauseimage" -binary "$TOOLS_BIN/netcheck" -ref "$REGISTRY/kubecc-netcheck:e2e" -path /netcheck)
log "smoke: pushed $image"

# A listener on the host at the node IP, on a free port.
"$TOOLS_BIN/netcheck" -n 1 -timeout 120s listen "$NODE_IP:0" >"$WORK/peer" 2>"$WORK/listen.log" &
listener=$!
wait_for 10 "the host listener" grep -q 'listening on' "$WORK/listen.log"
addr=$(awk '/listening on/ {print $NF}' "$WORK/listen.log")
log "smoke: host listener on $addr"

# 1. Pod
t=$(now)
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $POD
  namespace: $NS
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: pause
    image: $REGISTRY/pause:3.10
EOF
k wait pod "$POD" -n "$NS" --for=condition=Ready --timeout=60s >/dev/null ||
	{ k describe pod "$POD" -n "$NS" >&2 || true; die "pod $POD did not become Ready"; }
phase=$(k get pod "$POD" -n "$NS" -o jsonpath='{.status.phase} {.status.podIP}')
[ "${phase%% *}" = Running ] || die "pod $POD is $phase"
log "smoke: pod Running in $(since "$t")s (pod IP ${phase#* })"

# 2. Job dialing the host
t=$(now)
k apply -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata:
  name: $JOB
  namespace: $NS
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 90
  ttlSecondsAfterFinished: 300
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: dial
        image: $image
        args: ["-timeout", "30s", "dial", "$addr"]
EOF
if ! k wait job "$JOB" -n "$NS" --for=condition=Complete --timeout=90s >/dev/null; then
	k describe job "$JOB" -n "$NS" >&2 || true
	k logs -n "$NS" "job/$JOB" >&2 || true
	die "job $JOB did not complete"
fi
log "smoke: job Complete in $(since "$t")s; it said: $(k logs -n "$NS" "job/$JOB" 2>/dev/null | tail -n1)"
wait "$listener" || die "the host listener failed: $(cat "$WORK/listen.log")"
listener=
peer=$(cat "$WORK/peer")
case "$peer" in
10.244.*) log "smoke: host listener was reached from pod address $peer" ;;
*) die "host listener was reached from $peer, not from a pod address" ;;
esac

t=$(now)
cleanup
trap - EXIT
log "smoke: deleted pod and job in $(since "$t")s; smoke OK"
