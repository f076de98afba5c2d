#!/usr/bin/env bash
# Runs every fuzz target of the packages that parse chaincode package input, one
# after the other (go test takes one -fuzz target per run), each for FUZZTIME
# (default 15s). A crash the fuzzer finds is written to
# <package>/testdata/fuzz/<Target>/ by go test: commit it, and it is a regular test
# from then on (plain `go test` runs every file there); fix the code until it passes.
#
# Go 1.26's fuzz coordinator can fail a run with a bare "context deadline exceeded"
# at the end of -fuzztime when the machine is busy (go.dev/issue/75804, fixed in
# Go 1.27). Such a run wrote no failing input and found nothing; it is reported as a
# flake and does not fail the script. A run that wrote a failing input always fails.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FUZZTIME="${FUZZTIME:-15s}"
PACKAGES=(./pkg/chaincode/ ./pkg/build/golang/)

# corpus_files DIR: the names of the files in DIR, sorted (none when it is missing).
corpus_files() {
	if [ -d "$1" ]; then find "$1" -maxdepth 1 -type f -printf '%f\n' | sort; fi
}

cd "$REPO_ROOT"
start=$SECONDS
passed=0 failed=0 flaked=0
failures=()
for pkg in "${PACKAGES[@]}"; do
	mapfile -t targets < <(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	[ "${#targets[@]}" -gt 0 ] || die "$pkg: no fuzz targets"
	for target in "${targets[@]}"; do
		corpus="$pkg/testdata/fuzz/$target"
		before=$(corpus_files "$corpus")
		out=$(mktemp)
		log "fuzz $pkg $target for $FUZZTIME"
		set +e
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >"$out" 2>&1
		rc=$?
		set -e
		after=$(corpus_files "$corpus")
		new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed '/^$/d')
		if [ "$rc" -eq 0 ]; then
			passed=$((passed + 1))
			log "$target: $(grep -o 'execs: [0-9]*' "$out" | tail -n1 || true), no failure"
		elif [ -z "$new" ] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
			flaked=$((flaked + 1))
			log "$target: flake: 'context deadline exceeded' at the end of -fuzztime with no failing input (go.dev/issue/75804)"
		else
			failed=$((failed + 1))
			failures+=("$target")
			cat "$out" >&2
			[ -z "$new" ] || log "$target: failing input written to $corpus/$(echo "$new" | head -n1); rerun with: go test -run '^$target\$' $pkg"
		fi
		rm -f "$out"
	done
done
note=""
[ "$flaked" -eq 0 ] || note=" ($flaked flaked, counted as passed)"
log "fuzz: $((SECONDS - start))s for $((passed + failed + flaked)) targets of $FUZZTIME each$note"
passed=$((passed + flaked))
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || die "fuzz targets failed: ${failures[*]}"
