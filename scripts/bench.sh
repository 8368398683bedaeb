#!/usr/bin/env bash
# Runs the benchmarks as root and keeps their output under bench/, named by
# date and kernel, so that a later run can be compared with this one.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "make bench needs root: it loads BPF programs" >&2
	exit 1
fi

mkdir -p bench
out="bench/$(date -u +%Y%m%dT%H%M%SZ)-$(uname -r).txt"
go run ./test/bench -bin "$PWD/bin/edgeward" -out "$out" "$@"
echo "results written to $out"
