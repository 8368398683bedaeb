#!/usr/bin/env bash
# Runs Edgeward's kernel tests (test/kernel/doc.go) on several kernels: the
# newest Debian cloud kernel of each series below, booted in qemu (TCG, no
# network device, busybox initramfs), and the running kernel, on which the
# same test binaries run directly as root in namespaces of their own.
# Prints a report per kernel and the verifier's figures per program and
# kernel, which it also writes to bench/verifier-DATE.txt. Exits 1 when a
# kernel fails.
#
# Environment:
#   EDGEWARD_KERNELS       kernel packages to boot instead of the newest of
#                          each series, separated by spaces
#   EDGEWARD_KERNEL_CACHE  kernel packages and console logs
#                          (default /var/cache/edgeward-kernels)
#   QEMU_TIMEOUT           seconds one guest may run (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."

# Kernel series to boot, as package name patterns: the newest of each.
series=(
	'^linux-image-6\.1\.0-[0-9]+-cloud-amd64$'
	'^linux-image-6\.12\.[0-9]+\+deb[0-9]+-cloud-amd64$'
)
# Modules the guests load, with their dependencies, from the same package.
modules=(veth sch_ingress cls_bpf tun nfnetlink_queue)
guest_steps="modules verifier egress explain guard netns"
host_steps="verifier egress explain guard netns"

cache=${EDGEWARD_KERNEL_CACHE:-/var/cache/edgeward-kernels}
qemu_timeout=${QEMU_TIMEOUT:-300}
work=""
qemu_pid=""
apt_updated=0

# cleanup stops a running guest and removes the work directory; it runs on
# every exit, also on failure and interruption.
cleanup() {
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	if [ -n "$work" ]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "test-kernels: $*" >&2
	exit 1
}

# apt_update_once refreshes the package lists, at most once per run (or
# per subshell). It writes to stderr only: callers capture stdout.
apt_update_once() {
	if [ "$apt_updated" -eq 0 ]; then
		echo "test-kernels: apt-get update" >&2
		apt-get update -qq >&2 || die "apt-get update failed"
		apt_updated=1
	fi
}

# install_tools installs the host tools that are missing.
install_tools() {
	local dep what pkg missing=()
	for dep in qemu-system-x86_64:qemu-system-x86 cpio:cpio xz:xz-utils \
		depmod:kmod dpkg-deb:dpkg; do
		what=${dep%%:*}
		pkg=${dep##*:}
		command -v "$what" >/dev/null 2>&1 || [ -x "/usr/sbin/$what" ] || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return
	echo "test-kernels: installing ${missing[*]}"
	apt_update_once
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# newest_package PATTERN prints the newest package whose name matches.
newest_package() {
	local pattern=$1 found
	found=$(apt-cache pkgnames linux-image- | grep -E "$pattern" | sort -V | tail -1 || true)
	if [ -z "$found" ]; then
		apt_update_once
		found=$(apt-cache pkgnames linux-image- | grep -E "$pattern" | sort -V | tail -1 || true)
	fi
	[ -n "$found" ] || die "no package matches $pattern (apt-cache pkgnames linux-image-)"
	echo "$found"
}

# download PKG fetches PKG's .deb into $cache/debs once and prints its path.
download() {
	local pkg=$1 deb
	mkdir -p "$cache/debs"
	deb=$(find "$cache/debs" -name "${pkg}_*.deb" | head -1)
	if [ -z "$deb" ]; then
		echo "test-kernels: apt-get download $pkg" >&2
		if ! (cd "$cache/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >&2); then
			apt_update_once
			(cd "$cache/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >&2) ||
				die "apt-get download $pkg failed"
		fi
		deb=$(find "$cache/debs" -name "${pkg}_*.deb" | head -1)
	fi
	[ -n "$deb" ] || die "apt-get download $pkg left no ${pkg}_*.deb in $cache/debs"
	echo "$deb"
}

# prune_debs removes cached packages other than the ones named, so that
# the cache holds one package per kernel series, not every one ever used.
prune_debs() {
	local deb keep name pkg
	for deb in "$cache"/debs/*.deb; do
		[ -e "$deb" ] || continue
		name=$(basename "$deb")
		keep=0
		for pkg in "$@"; do
			[[ $name == "${pkg}_"* ]] && keep=1
		done
		[ $keep -eq 1 ] || rm -f "$deb"
	done
}

# busybox_static prints the path of busybox-static's binary, extracted from
# the package: installing it would replace the host's busybox package.
busybox_static() {
	local out=$cache/busybox tmp deb
	if [ ! -x "$out" ]; then
		tmp=$(mktemp -d "$work/busybox.XXXXXX")
		deb=$(download busybox-static)
		dpkg-deb -x "$deb" "$tmp"
		install -m 0755 "$tmp/bin/busybox" "$out"
	fi
	echo "$out"
}

# prepare_kernel PKG extracts the kernel image and the modules the guests
# need, decompressed and with their dependencies, into $work/PKG, and
# prints that directory. It holds vmlinuz, release, modules.list (load
# order, paths relative to lib/modules/RELEASE) and lib/modules/RELEASE.
prepare_kernel() {
	local pkg=$1 dir=$work/$1 tree=$work/$1.deb deb release
	mkdir -p "$dir" "$tree"
	deb=$(download "$pkg")
	dpkg-deb -x "$deb" "$tree"
	release=$(basename "$(find "$tree/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -1)")
	[ -n "$release" ] || die "$pkg: no lib/modules/RELEASE in the package"
	cp "$tree/boot/vmlinuz-$release" "$dir/vmlinuz"
	echo "$release" >"$dir/release"
	depmod -b "$tree" "$release" || die "$pkg: depmod failed"

	module_order "$tree/lib/modules/$release" >"$dir/modules.list.src"
	copy_modules "$tree/lib/modules/$release" "$dir/lib/modules/$release" \
		<"$dir/modules.list.src" >"$dir/modules.list"
	rm -rf "$tree" "$dir/modules.list.src"
	echo "$dir"
}

# module_order MODDIR prints the files of $modules and their dependencies,
# dependencies first, each once; built-in modules are left out.
module_order() {
	local moddir=$1 m line
	local -A seen=()
	local -a parts
	for m in "${modules[@]}"; do
		line=$(grep -E "(^|/)${m}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" || true)
		if [ -z "$line" ]; then
			grep -qE "/${m}\.ko$" "$moddir/modules.builtin" ||
				die "module $m is neither in $moddir/modules.dep nor built in"
			continue
		fi
		read -ra parts <<<"${line/:/}"
		# modules.dep lists every dependency, the deepest last.
		for ((i = ${#parts[@]} - 1; i >= 0; i--)); do
			[ -n "${seen[${parts[i]}]:-}" ] && continue
			seen[${parts[i]}]=1
			echo "${parts[i]}"
		done
	done
}

# copy_modules SRC DST copies the module files read from stdin from SRC to
# DST, decompressed (busybox insmod takes plain .ko), and prints their new
# names.
copy_modules() {
	local src=$1 dst=$2 file out
	while read -r file; do
		out=${file%.xz}
		out=${out%.zst}
		out=${out%.gz}
		mkdir -p "$(dirname "$dst/$out")"
		case $file in
		*.xz) xz -dc "$src/$file" >"$dst/$out" ;;
		*.zst) zstd -qdc "$src/$file" >"$dst/$out" ;;
		*.gz) gzip -dc "$src/$file" >"$dst/$out" ;;
		*) cp "$src/$file" "$dst/$out" ;;
		esac || die "decompress module $file failed"
		echo "$out"
	done
}

# build_tests compiles the test binaries, static, into $work/tests with
# what steps.sh needs beside them.
build_tests() {
	local out=$work/tests
	mkdir -p "$out"
	echo "test-kernels: building the test binaries"
	CGO_ENABLED=0 go test -c -o "$out/kernel.test" ./test/kernel ||
		die "go test -c ./test/kernel failed"
	CGO_ENABLED=0 go test -c -o "$out/loader.test" ./loader ||
		die "go test -c ./loader failed"
	cp loader/edgeward_bpfel.o test/kernel/steps.sh "$out/"
}

# build_initramfs KDIR OUT writes the guest's initramfs: busybox and its
# applets, init.sh as /init, the test binaries and the kernel's modules.
build_initramfs() {
	local kdir=$1 out=$2 root applet bb
	bb=$(busybox_static)
	root=$(mktemp -d "$work/root.XXXXXX")
	mkdir -p "$root/bin" "$root/lib"
	cp "$bb" "$root/bin/busybox"
	for applet in $("$bb" --list); do
		[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
	done
	install -m 0755 test/kernel/init.sh "$root/init"
	cp -r "$work/tests" "$root/tests"
	cp -r "$kdir/lib/modules" "$root/lib/modules"
	cp "$kdir/modules.list" "$root/modules.list"
	(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet) >"$out" ||
		die "cpio of $root failed"
	rm -rf "$root"
}

# boot KDIR LOG boots the kernel of KDIR with its initramfs under a time
# limit and writes the serial console to LOG. The guest has no network
# device and reaches nothing of the host.
boot() {
	local kdir=$1 log=$2 rc=0
	build_initramfs "$kdir" "$work/initramfs.cpio"
	timeout "$qemu_timeout" qemu-system-x86_64 \
		-accel tcg -cpu max -smp 2 -m 1G \
		-nodefaults -display none -monitor none -nic none -no-reboot \
		-serial "file:$log" \
		-kernel "$kdir/vmlinuz" -initrd "$work/initramfs.cpio" \
		-append "console=ttyS0 panic=-1 quiet rdinit=/init" </dev/null &
	qemu_pid=$!
	wait "$qemu_pid" || rc=$?
	qemu_pid=""
	rm -f "$work/initramfs.cpio"
	if [ "$rc" -eq 124 ]; then
		echo "qemu stopped after ${qemu_timeout}s (QEMU_TIMEOUT)" >>"$log"
	fi
}

# run_host runs the steps directly on the running kernel, writing to LOG.
run_host() {
	local log=$1
	(cd "$work" && EDGEWARD_BPF_OBJECT="$work/tests/edgeward_bpfel.o" \
		timeout "$qemu_timeout" sh "$work/tests/steps.sh" "$work/tests") >"$log" 2>&1 || true
}

# judge KERNEL HOW LOG STEPS prints the report of one kernel, adds its
# verifier figures to $work/verifier.tsv and returns 1 when a step failed.
judge() {
	local label=$1 how=$2 log=$3 steps=$4 findings status=pass kind name result detail
	findings=$(awk -v steps="$steps" -f test/kernel/report.awk "$log")

	while IFS=$'\t' read -r kind name result detail; do
		[ "$kind" = step ] || continue
		case $result in
		fail) status=fail ;;
		skip) [ "$status" = pass ] && status=skip ;;
		esac
	done <<<"$findings"

	echo "== $label ($how): $status"
	while IFS=$'\t' read -r kind name result detail; do
		case $kind in
		step) printf '   %-9s %-5s %s\n' "$name" "$result" "$detail" ;;
		attach) printf '   attached  (%s) %s\n' "$name" "$result" ;;
		why) printf '   | %s\n' "$name" ;;
		verifier) printf '%s\t%s\t%s\t%s\n' "$label" "$name" "$result" "$detail" >>"$work/verifier.tsv" ;;
		esac
	done <<<"$findings"
	[ "$status" = fail ] && echo "   console log: $log"
	echo "$status" >>"$work/statuses"
	[ "$status" != fail ]
}

# verifier_table pivots $work/verifier.tsv: one row per program, one column
# per kernel, "insns/states" in each cell.
verifier_table() {
	awk -F '\t' '
	!($1 in col) { col[$1] = ++ncols; label[ncols] = $1 }
	!($2 in row) { row[$2] = ++nrows; prog[nrows] = $2 }
	{ cell[row[$2], col[$1]] = $3 "/" $4 }
	END {
		printf "%-16s", "program"
		for (c = 1; c <= ncols; c++) printf "  %-28s", label[c]
		printf "\n"
		for (r = 1; r <= nrows; r++) {
			printf "%-16s", prog[r]
			for (c = 1; c <= ncols; c++) {
				v = ((r, c) in cell) ? cell[r, c] : "-"
				printf "  %-28s", v
			}
			printf "\n"
		}
	}' "$work/verifier.tsv"
}

# write_verifier prints the verifier table and keeps it under bench/.
write_verifier() {
	local out
	out="bench/verifier-$(date -u +%Y%m%dT%H%M%SZ).txt"
	mkdir -p bench
	if [ ! -s "$work/verifier.tsv" ]; then
		echo "verifier: no figures (no kernel got through the verifier step)"
		return
	fi
	{
		echo "# verifier: processed instructions/total states per program and kernel"
		echo "# $(git describe --tags --always --dirty 2>/dev/null || echo dev), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		verifier_table
	} | tee "$out"
	echo "verifier table written to $out"
}

main() {
	[ "$(id -u)" -eq 0 ] || die "needs root: it loads BPF programs and builds network namespaces"
	work=$(mktemp -d /tmp/edgeward-kernels.XXXXXX)
	mkdir -p "$cache/logs"
	install_tools

	local -a kernels
	if [ -n "${EDGEWARD_KERNELS:-}" ]; then
		read -ra kernels <<<"$EDGEWARD_KERNELS"
	else
		for pattern in "${series[@]}"; do
			kernels+=("$(newest_package "$pattern")")
		done
	fi
	prune_debs "${kernels[@]}" busybox-static
	build_tests

	local pkg kdir release failed=0 start host
	for pkg in "${kernels[@]}"; do
		kdir=$(prepare_kernel "$pkg")
		release=$(cat "$kdir/release")
		echo "test-kernels: booting $release in qemu (TCG)"
		start=$SECONDS
		boot "$kdir" "$cache/logs/$release.log"
		judge "$release" "qemu, $((SECONDS - start)) s" "$cache/logs/$release.log" "$guest_steps" ||
			failed=$((failed + 1))
		rm -rf "$kdir"
	done

	host=$(uname -r)
	echo "test-kernels: running on the host's kernel $host"
	start=$SECONDS
	run_host "$cache/logs/host-$host.log"
	judge "$host (host)" "running kernel, $((SECONDS - start)) s" "$cache/logs/host-$host.log" "$host_steps" ||
		failed=$((failed + 1))

	echo
	write_verifier
	echo
	echo "kernels: $(grep -c '^pass$' "$work/statuses" || true) passed," \
		"$failed failed, $(grep -c '^skip$' "$work/statuses" || true) skipped"
	[ "$failed" -eq 0 ]
}

main "$@"
