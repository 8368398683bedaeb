#!/bin/sh
# Runs the kernel matrix's steps on the kernel this runs on: in a qemu guest
# (called by init.sh) or on the host. Each step's output stands between
# "@@edgeward begin NAME" and "@@edgeward end NAME rc=N" lines, which
# scripts/test-kernels.sh reads back. POSIX sh: busybox runs it in guests.
#
# usage: steps.sh DIR   (DIR holds kernel.test and loader.test)
set -u

bin=${1:?usage: steps.sh DIR-WITH-TEST-BINARIES}

# step NAME COMMAND... runs one step between its markers.
step() {
	name=$1
	shift
	echo "@@edgeward begin $name"
	"$@" 2>&1
	echo "@@edgeward end $name rc=$?"
}

echo "@@edgeward kernel $(uname -r)"
step verifier "$bin/kernel.test" -test.v -test.timeout=120s -test.run '^TestVerifierStats$'
step egress "$bin/loader.test" -test.v -test.timeout=300s -test.run '^TestEgress'
step explain "$bin/loader.test" -test.v -test.timeout=120s -test.run '^TestExplain'
step guard "$bin/loader.test" -test.v -test.timeout=120s -test.run '^TestSocketGuard'
step netns "$bin/kernel.test" -test.v -test.timeout=180s -test.parallel=12 \
	-test.run '^TestAttachConnections$'
