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

# The spool's figures come from Go benchmarks; keep them with the rest.
{
	echo "spool: appends through the Go API (32 appenders, each acknowledged after its fsync)"
	echo "next to a plain write+fsync loop with the same batch size on the same disk (floor_appends/s),"
	echo "single-record POSTs from 32 clients, and resident memory with a 1 GiB backlog (goal: under 100 MiB)"
	go test ./spool -run '^$' -bench 'Append' -benchtime 2s | grep -E '^Benchmark'
	go test ./spool -run '^$' -bench 'BacklogMemory' -benchtime 1x | grep -E '^Benchmark'
	echo
	echo "forwarder: drain rate of a 100,000-record backlog to a local mosquitto over TLS, next to a bare MQTT client"
	go test ./spool/forward -run '^$' -bench 'Drain' -benchtime 1x | grep -E '^Benchmark'
} | tee -a "$out"
echo "results written to $out"
