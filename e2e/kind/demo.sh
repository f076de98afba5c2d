#!/usr/bin/env bash
# The demo flow of e2e/demo.sh on the kind network of e2e/kind/up.sh: the example Go
# chaincode is packaged with the peer CLI, installed (kubecc's build hook compiles it in
# a build Job, the stock peer having no Go, and pushes the image to kind-registry:5000),
# approved, committed (kubecc's run hook starts it as a Pod owned by the peer Pod),
# invoked and queried; every peer command runs as the org admin in the cli Pod through
# `kubectl exec`. Needs kubectl and a network from up.sh (run it first).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need kubectl
k -n "$NS" get deployment peer0-org1 cli >/dev/null 2>&1 || die "no peer and cli in namespace $NS of context $KCTX: run e2e/kind/up.sh first"

step_start=0
step() { step_start=$SECONDS; printf '\n==> %s\n' "$*"; }
done_step() { printf '    done in %d s\n' $((SECONDS - step_start)); }

label="demo_$(date +%s)"
name="demo$(date +%s)"
dir="/tmp/$label"

step "copy examples/chaincode/go into the cli Pod"
tar -C "$REPO_ROOT/examples/chaincode/go" -cf - . | cli_exec sh -c "mkdir -p '$dir/src' && tar -C '$dir/src' -xf -"
done_step

step "peer lifecycle chaincode package --lang golang (label $label)"
cli_exec peer lifecycle chaincode package "$dir/cc.tgz" --path "$dir/src" --lang golang --label "$label"
done_step

step "peer lifecycle chaincode install (kubecc's build hook compiles it in a Job; the first pulls the Go image)"
out=$(cli_exec peer lifecycle chaincode install "$dir/cc.tgz" 2>&1) || die "install failed: $out"
id=$(sed -n 's/.*Chaincode code package identifier: \([^ ]*\).*/\1/p' <<<"$out")
[ -n "$id" ] || die "install printed no package ID: $out"
echo "    package ID: $id"
done_step

step "peer lifecycle chaincode approveformyorg + commit (the peer calls kubecc's run hook)"
common=(--channelID "$CHANNEL" --name "$name" --version 1 --sequence 1)
cli_exec peer lifecycle chaincode approveformyorg "${ORDERER_ARGS[@]}" "${common[@]}" --package-id "$id" --waitForEvent
cli_exec peer lifecycle chaincode commit "${ORDERER_ARGS[@]}" "${PEER_ARGS[@]}" "${common[@]}"
done_step

step "peer chaincode invoke put greeting hello"
cli_exec peer chaincode invoke "${ORDERER_ARGS[@]}" "${PEER_ARGS[@]}" -C "$CHANNEL" -n "$name" \
	-c '{"Args":["put","greeting","hello"]}' --waitForEvent 2>&1 | sed -n 's/.*\(Chaincode invoke successful.*\)/    \1/p'
done_step

step "peer chaincode query get greeting"
result=$(cli_exec peer chaincode query -C "$CHANNEL" -n "$name" -c '{"Args":["get","greeting"]}')
printf '    result: %s\n' "$result"
[ "$result" = hello ] || die "query returned '$result', want hello"
done_step

step "the chaincode pod (owned by the peer Pod)"
k -n "$NS" get pods -l app.kubernetes.io/managed-by=kubecc \
	-o custom-columns='NAME:.metadata.name,STATUS:.status.phase,OWNER:.metadata.ownerReferences[0].name,IMAGE:.spec.containers[0].image' | sed 's/^/    /'
cli_exec rm -rf "$dir"
printf '\nThe network is still up (kubectl --context %s -n %s get pods); e2e/kind/down.sh deletes it.\n' "$KCTX" "$NS"
