#!/usr/bin/env bash
# Runs kubecc's benchmarks (e2e/bench/) on the e2e harness and updates docs/benchmarks.md.
#   QUICK=1          two runs per figure instead of five (N=... sets any count)
#   BENCH_ONLY=P1    only these benchmarks (comma list)
#   KUBECC_FABRIC_VERSION  the Fabric release of the network (e2e/lib.sh)
# Brings the harness up if it is not (and leaves it up). P1 compares with ko v0.18.0,
# built once from the Go module proxy into ~/.cache/kubecc/ko-v0.18.0/ko.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KO_VERSION="${KO_VERSION:-v0.18.0}"

# install_ko: ko built once from the module proxy, cached by version.
install_ko() {
	local dir="$KUBECC_CACHE/ko-$KO_VERSION"
	KO="$dir/ko"
	if [ -x "$KO" ] && "$KO" version 2>/dev/null | grep -qx "${KO_VERSION#v}\|$KO_VERSION"; then
		return
	fi
	log "building ko $KO_VERSION from the module proxy (once; cached in $dir)"
	build_go_tool github.com/google/ko "$KO_VERSION" github.com/google/ko "$KO"
	"$KO" version >&2
}

[ -x "$REPO_ROOT/bin/kubecc" ] || make -C "$REPO_ROOT" all >&2
# The release a running network was made with is the first word of its params (fabric/up.sh).
running=$(sed -n '1s/^fabric=\([^ ]*\).*/\1/p' "$KUBECC_E2E_ROOT/fabric/params" 2>/dev/null || true)
if [ ! -f "$KUBECC_E2E_ROOT/cluster/env" ] || ! curl -fsS -m 2 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
	log "harness not up: bash e2e/up.sh"
	bash "$REPO_ROOT/e2e/up.sh"
elif [ "$running" != "$FABRIC_VERSION${KUBECC_FABRIC_HOME:+@$KUBECC_FABRIC_HOME}" ]; then
	log "Fabric network of release '${running:-none}', not $FABRIC_VERSION: bash e2e/up.sh"
	bash "$REPO_ROOT/e2e/up.sh"
fi
case ",${BENCH_ONLY:-P1}," in
*,P1,* | *,p1,*) install_ko ;;
esac
export KO="${KO:-}" REGISTRY="${REGISTRY:-$REGISTRY_ADDR}"

bin=$(mktemp -d)
# shellcheck disable=SC2064
trap "rm -rf '$bin'" EXIT
(cd "$REPO_ROOT" && go build -o "$bin/bench" ./e2e/bench)
cd "$REPO_ROOT"
"$bin/bench"
