#!/usr/bin/env bash
# Installs the system packages Edgeward's build, tests and demo need, and
# only those that are missing. `deps.sh build` checks the BPF toolchain only.
set -euo pipefail

# command-or-file to look for, and the Debian package that brings it
build_deps=(
	"clang-19:clang-19"
	"llvm-strip-19:llvm-19"
	"/usr/include/bpf/bpf_helpers.h:libbpf-dev"
	"/usr/include/x86_64-linux-gnu/asm/types.h:linux-libc-dev"
)
run_deps=(
	"ip:iproute2"
	"iptables:iptables"
	"bpftool:bpftool"
	"wireguard-go:wireguard-go"
	"wg:wireguard-tools"
	"tinyproxy:tinyproxy"
	"curl:curl"
	"ping:iputils-ping"
	"nc:netcat-openbsd"
	"tcpreplay:tcpreplay"
	"trafgen:netsniff-ng"
	"ethtool:ethtool"
	"nft:nftables"
	"mosquitto:mosquitto"
	"dpkg-deb:dpkg"
	"systemd-analyze:systemd"
	"setpriv:util-linux"
	"dnsperf:dnsperf"
)

deps=("${build_deps[@]}")
if [ "${1:-all}" = all ]; then
	deps+=("${run_deps[@]}")
fi

missing=()
for dep in "${deps[@]}"; do
	what=${dep%%:*}
	pkg=${dep##*:}
	if [[ $what == /* ]]; then
		[ -e "$what" ] && continue
	else
		command -v "$what" >/dev/null 2>&1 && continue
		[ -x "/usr/sbin/$what" ] && continue
	fi
	missing+=("$pkg")
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}; run as root (or install them)" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
