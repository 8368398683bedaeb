#!/usr/bin/env bash
# Runs every Go test (root needed: BPF, network namespaces), then each fuzz
# target for a bounded time. Fails when any test fails or is skipped: a skip
# here would hide a broken data plane.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "make test needs root: the tests load BPF programs and build network namespaces" >&2
	exit 1
fi

log=$(mktemp /tmp/edgeward-test.XXXXXX)
fuzzlog=$(mktemp /tmp/edgeward-fuzz.XXXXXX)
trap 'rm -f "$log" "$fuzzlog"' EXIT

# Packages one after another: the integration tests build network sandboxes
# and this machine has two cores.
# The integration tests run the binary make just built.
export EDGEWARD_BIN="$PWD/bin/edgeward"
go test -count=1 -p 1 -v -timeout 20m ./... >"$log" 2>&1
status=$?

grep -E '^(ok|FAIL|panic:)|--- (FAIL|SKIP)|^\s+\S+_test\.go:[0-9]+: ' "$log" | grep -vE '^\s+\S+_test\.go:[0-9]+: ' || true
if [ $status -ne 0 ]; then
	echo
	echo "---- failures (full log lines around them) ----"
	grep -nE -- '--- FAIL|panic:' "$log" | head -40
	grep -B2 -A25 -E -- '--- FAIL' "$log" | head -300
fi

skipped=$(grep -cE -- '--- SKIP' "$log" || true)
if [ "$skipped" -gt 0 ]; then
	echo
	echo "skipped tests (not allowed in make test):"
	grep -A3 -E -- '--- SKIP' "$log"
	status=1
fi

# Fuzz targets, each for a bounded time; their seeds already ran above.
fuzz_time=${FUZZ_TIME:-10s}
fuzz_failed=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $target for $fuzz_time"
		if ! go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzz_time" "$pkg" >"$fuzzlog" 2>&1; then
			tail -30 "$fuzzlog"
			fuzz_failed=$((fuzz_failed + 1))
			status=1
		fi
	done
done

passed=$(grep -cE -- '--- PASS' "$log" || true)
failed=$(grep -cE -- '--- FAIL' "$log" || true)
broken=$(grep -cE '^FAIL\s.*\[(build|setup) failed\]' "$log" || true)
failed=$((failed + broken))
echo
echo "tests: $passed passed, $((failed + fuzz_failed)) failed, $skipped skipped"
exit $status
