#!/usr/bin/env bash
# The main job, end to end: a real Kubernetes cluster, a registry and a stock Fabric
# peer with kubecc as its external builder; the example Go chaincode is packaged with the
# peer CLI, installed (kubecc builds and pushes its image), approved, committed (kubecc
# runs it as a pod), invoked and queried. The network stays up: `make e2e-down` stops it.
# KUBECC_FABRIC_VERSION picks the Fabric release (e2e/lib.sh).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

step_start=0
step() { step_start=$(date +%s%N); printf '\n==> %s\n' "$*"; }
done_step() { printf '    done in %d ms\n' $((($(date +%s%N) - step_start) / 1000000)); }

step "harness: cluster, registry, Fabric v$FABRIC_VERSION network (first run builds Kubernetes and Fabric: ~20 min)"
# A fresh channel, so the demo can be run again and again.
bash "$REPO_ROOT/e2e/fabric/down.sh" >/dev/null 2>&1 || true
bash "$REPO_ROOT/e2e/up.sh" 2>&1 | sed 's/^/    /'
done_step
set -a
# shellcheck source=/dev/null
. "$KUBECC_E2E_ROOT/cluster/env"
# shellcheck source=/dev/null
. "$KUBECC_E2E_ROOT/fabric/env"
set +a
ns=$(awk '/^namespace:/ {print $2}' "$KUBECC_E2E_ROOT/builder/config.yaml")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
label="demo_$(date +%s)"

step "peer lifecycle chaincode package --lang golang (examples/chaincode/go, label $label)"
peer lifecycle chaincode package "$work/demo.tgz" --path "$REPO_ROOT/examples/chaincode/go" --lang golang --label "$label"
done_step

step "peer lifecycle chaincode install (kubecc's build hook compiles and pushes the image)"
out=$(peer lifecycle chaincode install "$work/demo.tgz" 2>&1)
id=$(sed -n 's/.*Chaincode code package identifier: \([^ ]*\).*/\1/p' <<<"$out")
[ -n "$id" ] || die "install printed no package ID: $out"
echo "    package ID: $id"
grep -a "kubecc: " "$KUBECC_E2E_LOGS/peer.log" | sed -n 's/.*-> \(kubecc: .*\) command=build/    \1/p' | tail -n 3
done_step

step "peer lifecycle chaincode approveformyorg + commit (the peer calls kubecc's run hook)"
common=(--channelID "$CHANNEL" --name demo --version 1 --sequence 1)
peer lifecycle chaincode approveformyorg "${ORDERER_ARGS[@]}" "${common[@]}" --package-id "$id" --waitForEvent 2>/dev/null
peer lifecycle chaincode commit "${ORDERER_ARGS[@]}" "${PEER_ARGS[@]}" "${common[@]}" 2>/dev/null
done_step

step "peer chaincode invoke put greeting hello"
peer chaincode invoke "${ORDERER_ARGS[@]}" "${PEER_ARGS[@]}" -C "$CHANNEL" -n demo -c '{"Args":["put","greeting","hello"]}' --waitForEvent 2>&1 | sed -n 's/.*\(Chaincode invoke successful.*\)/    \1/p'
done_step

step "peer chaincode query get greeting"
printf '    result: %s\n' "$(peer chaincode query -C "$CHANNEL" -n demo -c '{"Args":["get","greeting"]}')"
done_step

step "the chaincode pod"
# The chaincode already served; the kubelet reports the container's state a moment later.
"$KUBECTL" -n "$ns" wait --for=condition=Ready pod -l "app.kubernetes.io/managed-by=kubecc,kubecc.io/chaincode=$label" --timeout=30s >/dev/null 2>&1 || true
"$KUBECTL" -n "$ns" get pods -l app.kubernetes.io/managed-by=kubecc -o wide | sed 's/^/    /'
grep -a "kubecc run: " "$KUBECC_E2E_LOGS/peer.log" | sed -n 's/.*-> \(kubecc run: .*\) command=run/    \1/p' | tail -n 3
printf '\nThe network is still up: source %s and %s to use it; make e2e-down stops everything.\n' \
	"$KUBECC_E2E_ROOT/cluster/env" "$KUBECC_E2E_ROOT/fabric/env"
