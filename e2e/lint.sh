#!/usr/bin/env bash
# gofmt, go vet and golangci-lint over the module (e2e build tag included) and the
# example chaincode. golangci-lint is built once from the Go module proxy into
# ~/.cache/kubecc.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GOLANGCI_VERSION="${GOLANGCI_VERSION:-v2.15.0}"
lint="$KUBECC_CACHE/golangci-lint-$GOLANGCI_VERSION/golangci-lint"
if [ ! -x "$lint" ]; then
	log "building golangci-lint $GOLANGCI_VERSION from the module proxy (once; cached in ${lint%/*})"
	build_go_tool github.com/golangci/golangci-lint/v2 "$GOLANGCI_VERSION" github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$lint"
fi

cd "$REPO_ROOT"
unformatted=$(gofmt -l . examples)
[ -z "$unformatted" ] || die "gofmt: not formatted: $unformatted"
go vet -tags e2e ./...
"$lint" run --build-tags e2e ./...
(cd examples/chaincode/go && go vet ./... && "$lint" run ./...)
log "lint: clean (gofmt, go vet, golangci-lint $GOLANGCI_VERSION)"
