#!/usr/bin/env bash
# Proves that the committed bpf2go output matches bpf/ built with the pinned
# clang: regenerates it and compares. On a mismatch the regenerated files are
# left in place, ready to be committed.
set -euo pipefail
cd "$(dirname "$0")/.."

files=(loader/edgeward_bpfel.go loader/edgeward_bpfel.o)
saved=$(mktemp -d)
trap 'rm -rf "$saved"' EXIT
cp "${files[@]}" "$saved/"

make --no-print-directory generate >/dev/null

stale=0
for f in "${files[@]}"; do
	if ! cmp -s "$f" "$saved/$(basename "$f")"; then
		echo "check: $f does not match bpf/ built with the pinned clang (regenerated; commit it)"
		stale=1
	fi
done
[ $stale -eq 0 ] && echo "check: committed BPF objects match the sources"
exit $stale
