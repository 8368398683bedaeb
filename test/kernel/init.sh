#!/bin/sh
# /init of the kernel matrix's qemu guests (see scripts/test-kernels.sh):
# mounts what Go tests need (proc, sysfs, devtmpfs, a tmpfs, cgroup v2), loads the modules listed in /modules.list,
# runs steps.sh on the test binaries in /tests and powers the guest off.
# Its only output is the serial console.
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
# The socket guard's tests make their cgroups below the cgroup v2 root.
mount -t cgroup2 cgroup2 /sys/fs/cgroup

# Modules, dependencies first, as paths under /lib/modules/$(uname -r).
echo "@@edgeward begin modules"
failed=0
while read -r module; do
	insmod "/lib/modules/$(uname -r)/$module" || {
		echo "insmod $module failed"
		failed=$((failed + 1))
	}
done </modules.list
echo "@@edgeward end modules rc=$failed"

export CI=1 EDGEWARD_BPF_OBJECT=/tests/edgeward_bpfel.o HOME=/tmp
/tests/steps.sh /tests
echo "@@edgeward done"
poweroff -f
