#!/usr/bin/env bash
# gofmt, go vet and golangci-lint over the module (e2e build tag included) and the
# example chaincode. golangci-lint is built once from the Go module proxy into
# ~/.cache/kubecc (go install pkg@version needs version lists, which the proxy may refuse).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GOLANGCI_VERSION="${GOLANGCI_VERSION:-v2.15.0}"
lint="$KUBECC_CACHE/golangci-lint-$GOLANGCI_VERSION/golangci-lint"
if [ ! -x "$lint" ]; then
	log "building golangci-lint $GOLANGCI_VERSION from the module proxy (once; cached in ${lint%/*})"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	cat >"$tmp/go.mod" <<MOD
module kubecc.local/lintbuild

go 1.25

require github.com/golangci/golangci-lint/v2 $GOLANGCI_VERSION
MOD
	cat >"$tmp/tools.go" <<'SRC'
//go:build tools

package tools

import _ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
SRC
	mkdir -p "${lint%/*}"
	(cd "$tmp" && GOFLAGS=-mod=mod go mod tidy && CGO_ENABLED=0 go build -trimpath -o "$lint.new" github.com/golangci/golangci-lint/v2/cmd/golangci-lint) >&2
	mv -f "$lint.new" "$lint"
fi

cd "$REPO_ROOT"
unformatted=$(gofmt -l . examples)
[ -z "$unformatted" ] || die "gofmt: not formatted: $unformatted"
go vet -tags e2e ./...
"$lint" run --build-tags e2e ./...
(cd examples/chaincode/go && go vet ./... && "$lint" run ./...)
log "lint: clean (gofmt, go vet, golangci-lint $GOLANGCI_VERSION)"
