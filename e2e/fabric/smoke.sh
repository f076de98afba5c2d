#!/usr/bin/env bash
# Proves the Fabric network works without Kubernetes: starts it (up.sh) with the process
# builder (e2e/fabric/procbuilder, copied to a temporary folder) as its external builder,
# deploys e2e/fabric/testdata/simplecc through the chaincode lifecycle, invokes put, queries
# get, and prints timings.
#
#   smoke.sh [--keep]   --keep (or KEEP_NETWORK=true) leaves the network running;
#                       otherwise down.sh runs at the end, pass or fail.
# Env: PEER_TLS (true|false) as for up.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KEEP_NETWORK="${KEEP_NETWORK:-false}"
for arg in "$@"; do
	case "$arg" in
	--keep) KEEP_NETWORK=true ;;
	*) die "usage: $0 [--keep]" ;;
	esac
done

need jq
command -v go >/dev/null || die "go not found"
SMOKE_LOG="$KUBECC_E2E_LOGS/smoke.log"
: >"$SMOKE_LOG"

finish() {
	local rc=$?
	if [ "$rc" -ne 0 ]; then
		log "smoke FAILED (exit $rc); last lines of $SMOKE_LOG and $KUBECC_E2E_LOGS/peer.log:"
		tail -n 15 "$SMOKE_LOG" >&2 || true
		tail -n 30 "$KUBECC_E2E_LOGS/peer.log" >&2 || true
	fi
	if [ "$KEEP_NETWORK" != true ]; then bash "$HERE/down.sh" || true; fi
	exit "$rc"
}
trap finish EXIT

# timed LABEL COMMAND...: run COMMAND (output to $SMOKE_LOG), record and print its duration.
TIMINGS=()
timed() {
	local label=$1 t0 ms; shift
	t0=$(now_ns)
	"$@" >>"$SMOKE_LOG" 2>&1
	ms=$(ms_since "$t0")
	TIMINGS+=("$label=${ms}ms")
	log "smoke: $label ${ms} ms"
}

# A throwaway copy of the process builder: the peer's external builder for this run.
BUILDER="$KUBECC_E2E_ROOT/smoke/builder"
rm -rf "$BUILDER"
mkdir -p "$BUILDER"
cp -R "$HERE/procbuilder/bin" "$BUILDER/bin"

t0=$(now_ns)
KUBECC_BUILDER_DIR="$BUILDER" bash "$HERE/up.sh"
TIMINGS+=("up=$(ms_since "$t0")ms")

# shellcheck source=/dev/null
. "$FABRIC_DIR/env"

WORK="$KUBECC_E2E_ROOT/smoke"
PKG="$WORK/simplecc.tar.gz"
LABEL=simplecc_1
# A new chaincode name per run, so a kept network can run the smoke test again.
CC_NAME="simplecc$(date +%s)"
VALUE="v-$RANDOM-$$"

timed package peer lifecycle chaincode package "$PKG" --path "$HERE/testdata/simplecc" \
	--lang golang --label "$LABEL"
PKG_ID=$(peer lifecycle chaincode calculatepackageid "$PKG")
if peer lifecycle chaincode queryinstalled --output json 2>>"$SMOKE_LOG" |
	jq -e --arg id "$PKG_ID" '.installed_chaincodes // [] | any(.package_id == $id)' >/dev/null; then
	log "smoke: $PKG_ID already installed"
else
	timed install peer lifecycle chaincode install "$PKG"
fi
timed approve peer lifecycle chaincode approveformyorg "${ORDERER_ARGS[@]}" -C "$CHANNEL" \
	-n "$CC_NAME" --version 1 --package-id "$PKG_ID" --sequence 1
timed commit peer lifecycle chaincode commit "${ORDERER_ARGS[@]}" "${PEER_ARGS[@]}" -C "$CHANNEL" \
	-n "$CC_NAME" --version 1 --sequence 1
timed invoke_first peer chaincode invoke "${ORDERER_ARGS[@]}" "${PEER_ARGS[@]}" -C "$CHANNEL" \
	-n "$CC_NAME" -c "{\"Args\":[\"put\",\"smoke\",\"$VALUE\"]}" --waitForEvent
timed invoke_warm peer chaincode invoke "${ORDERER_ARGS[@]}" "${PEER_ARGS[@]}" -C "$CHANNEL" \
	-n "$CC_NAME" -c "{\"Args\":[\"put\",\"smoke2\",\"$VALUE\"]}" --waitForEvent

t0=$(now_ns)
got=$(peer chaincode query -C "$CHANNEL" -n "$CC_NAME" -c '{"Args":["get","smoke"]}' 2>>"$SMOKE_LOG")
TIMINGS+=("query=$(ms_since "$t0")ms")
[ "$got" = "$VALUE" ] || die "query get smoke returned '$got', want '$VALUE'"
log "smoke: query returned the value written"

log "smoke PASSED (peer TLS ${CORE_PEER_TLS_ENABLED}): ${TIMINGS[*]}"
echo "smoke passed: peer_tls=${CORE_PEER_TLS_ENABLED} ${TIMINGS[*]}"
