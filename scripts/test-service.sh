#!/usr/bin/env bash
# Runs the package under a real systemd: boots the host's systemd in a
# container (systemd-nspawn, private network, a root of its own, the
# host's /usr under a writable overlay), installs the .deb there with dpkg
# and checks what the README promises of the service:
#
#   - installing neither enables nor starts it
#   - it keeps restarting while it cannot start, and becomes active
#     (READY=1) once the LAN address of dns.listen exists
#   - systemctl reload applies the file, and fails on an invalid one while
#     the service stays active
#   - systemctl restart and stop leave the pinned policy in the kernel
#   - after kill -9 systemd starts it again
#   - an upgrade restarts a running daemon, which adopts the pins
#   - after edgeward unload it stays down
#   - an invalid file at start fails it without a restart loop
#   - removing the package stops and disables it
#   - the socket guard attaches under the unit's sandbox, to the
#     container's cgroup, and never to a cgroup of the host
#
# The configuration is the installed example in enforce mode, without its
# forwarder. Everything happens in the container's namespaces: its
# network has only lo and two veth pairs made inside it, and nothing
# leaves it. The container runs in a cgroup the script makes (the socket
# guard of the daemon inside attaches to the container's cgroup root,
# which is checked to be that one). Needs root; installs systemd-container
# when missing. Takes about half a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

work=""
nspawn_pid=""
leader=""
failed=0
created_run_dirs=()
host_cgroup=""

die() {
	echo "test-service: $*" >&2
	exit 1
}

# cleanup shuts the container down and removes what the script made,
# also on failure and interruption.
cleanup() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 1 40); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
		wait "$nspawn_pid" 2>/dev/null || true
	fi
	[ -n "$work" ] && rm -rf "$work"
	# The cgroup the container ran in, and what nspawn and systemd made
	# below it.
	if [ -n "$host_cgroup" ] && [ -d "$host_cgroup" ]; then
		find "$host_cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	fi
	# systemd-nspawn leaves empty folders under /run/systemd when the host
	# does not run systemd; remove those it created.
	local dir
	for dir in "${created_run_dirs[@]}"; do
		find "$dir" -depth -type d -empty -delete 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# inside runs a command inside the container (all its namespaces).
inside() {
	nsenter -t "$leader" -a "$@"
}

check() {
	local what=$1
	shift
	if "$@"; then
		echo "pass  $what"
	else
		echo "FAIL  $what"
		failed=$((failed + 1))
	fi
}

# wait_for SECONDS CMD... polls CMD every half second.
wait_for() {
	local tries=$(($1 * 2))
	shift
	for _ in $(seq 1 "$tries"); do
		"$@" && return 0
		sleep 0.5
	done
	return 1
}

install_tools() {
	command -v systemd-nspawn >/dev/null && return
	echo "test-service: installing systemd-container"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		systemd-container >/dev/null || die "apt-get install systemd-container failed"
}

# make_root lays out the container's root: symlinks into /usr (which the
# host lends), an empty dpkg database, the package to install.
make_root() {
	local deb=$1 root=$work/root d
	mkdir -p "$root"/{usr,etc,var/lib/dpkg/{info,updates,triggers},tmp,root} "$work/usr-upper"
	touch "$root/var/lib/dpkg/status"
	for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
	cp /usr/lib/os-release "$root/etc/os-release"
	cp /etc/passwd /etc/group "$root/etc/"
	# The iptables commands (transparent DNS) are alternatives symlinks.
	mkdir -p "$root/etc/alternatives"
	cp -a /etc/alternatives/iptables* /etc/alternatives/ip6tables* "$root/etc/alternatives/"
	cp "$deb" "$root/root/edgeward.deb"
}

# cgroup2_root FILE prints where the root of the cgroup v2 hierarchy is
# mounted according to the mountinfo FILE, or nothing.
cgroup2_root() {
	awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2" && $4 == "/") { print $5; exit } break } }' "$1"
}

# make_cgroup makes the cgroup the container runs in.
make_cgroup() {
	local root
	root=$(cgroup2_root /proc/self/mountinfo)
	[ -n "$root" ] || die "no cgroup v2 hierarchy is mounted on the host"
	host_cgroup=$root/edgeward-service-$$
	mkdir "$host_cgroup" || die "create the cgroup $host_cgroup"
}

boot() {
	local d
	for d in /run/systemd/nspawn /run/systemd/nspawn-root; do
		[ -e "$d" ] || created_run_dirs+=("$d")
	done
	# In the cgroup of the test: the container's cgroups (and with them
	# its cgroup v2 root, the default of paths.cgroup) are below it.
	# shellcheck disable=SC2016 # $BASHPID is the subshell's
	(
		echo "$BASHPID" >"$host_cgroup/cgroup.procs"
		exec systemd-nspawn -D "$work/root" --overlay="/usr:$work/usr-upper:/usr" \
			--private-network --register=no --keep-unit -M "edgeward-$$" \
			--capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN,CAP_SYS_ADMIN \
			--system-call-filter="bpf perf_event_open" \
			-b systemd.firstboot=off
	) >"$work/console.log" 2>&1 &
	nspawn_pid=$!
	wait_for 30 found_leader || die "the container did not start (console: $work/console.log)"
	timeout 120 nsenter -t "$leader" -a systemctl is-system-running --wait >/dev/null 2>&1 || true
}

# found_leader sets leader to the container's init once its systemd
# answers systemctl (it prints nothing while its socket is not up yet).
found_leader() {
	local state
	leader=$(pgrep -P "$nspawn_pid" | head -1)
	[ -n "$leader" ] || return 1
	state=$(inside systemctl is-system-running 2>/dev/null || true)
	[ -n "$state" ] && [ "$state" != offline ]
}

# mount_cgroup2 gives the container a cgroup v2 hierarchy where it has
# none (nspawn gives a container on a hybrid host only cgroup v1), and
# makes sure that the daemon's socket guard, which attaches to its root
# (the default paths.cgroup), attaches to the test's cgroup: the root's
# inode must be one of the directories below host_cgroup.
mount_cgroup2() {
	local mnt inode
	mnt=$(cgroup2_root "/proc/$leader/mountinfo")
	if [ -z "$mnt" ]; then
		mnt=/sys/fs/cgroup/unified
		inside sh -c "mount -o remount,rw /sys/fs/cgroup && mkdir -p $mnt &&
			mount -o remount,ro /sys/fs/cgroup && mount -t cgroup2 cgroup2 $mnt" ||
			die "mount a cgroup v2 hierarchy in the container"
	fi
	inode=$(inside stat -c %i "$mnt") || die "stat $mnt in the container"
	find "$host_cgroup" -type d -printf '%i\n' | grep -qx "$inode" ||
		die "the container's cgroup v2 root $mnt is not below $host_cgroup: refusing to run the daemon, whose socket guard would attach to a cgroup of the host"
}

# guard_attached: status names the socket guard on the container's root.
guard_attached() {
	local report
	report=$(inside edgeward status -c /etc/edgeward/edgeward.yaml) || true
	grep -q '^socket guard: setsockopt on cgroup /' <<<"$report"
}

# host_root_clean: no program of ours on the host's cgroup v2 root, and
# none left below host_cgroup after unload when $1 is "all".
host_root_clean() {
	local root out
	root=$(cgroup2_root /proc/self/mountinfo)
	out=$(bpftool cgroup show "$root" 2>/dev/null || true)
	if [ "${1:-}" = all ]; then
		out+=$(bpftool cgroup tree "$host_cgroup" 2>/dev/null || true)
	fi
	! grep -q guard_sockopt <<<"$out"
}

# mount_bpffs gives the container what systemd gives a gateway at boot: a
# bpffs at /sys/fs/bpf (nspawn mounts none, and its /sys is read-only).
mount_bpffs() {
	inside sh -c 'mount -o remount,rw /sys && mkdir -p /sys/fs/bpf && mount -o remount,ro /sys &&
		mount -t bpf -o mode=0700 bpffs /sys/fs/bpf' || die "mount a bpffs in the container"
}

# add_interfaces creates the LAN interface with the address the example's
# dns.listen names, and an uplink.
add_interfaces() {
	# shellcheck disable=SC2016 # $i expands in the container's shell
	inside sh -c 'ip link add lan0 type veth peer name lanp &&
		ip link add wan0 type veth peer name wanp &&
		for i in lan0 lanp wan0 wanp; do ip link set "$i" up; done &&
		ip addr add 10.10.0.1/24 dev lan0' || die "create the container's interfaces"
}

# install_package installs the .deb with dpkg and turns the example into
# the test's configuration: enforce mode, and no spool.forward (its
# certificates do not exist here, and nothing may leave).
install_package() {
	inside dpkg -i /root/edgeward.deb >"$work/dpkg.log" 2>&1 ||
		die "dpkg -i in the container failed: $(cat "$work/dpkg.log")"
	local conf=$work/root/etc/edgeward/edgeward.yaml
	sed -e 's/^mode: audit$/mode: enforce/' "$conf" |
		awk '/^  forward:/ { skip = 1; next } skip && /^    / { next } { skip = 0; print }' \
			>"$conf.new"
	mv "$conf.new" "$conf"
	grep -q '^mode: enforce$' "$conf" || die "the example has no 'mode: audit' line"
	# Transparent DNS: its iptables rules must work under the unit's sandbox.
	sed -i 's/^  # transparent: true.*/  transparent: true/' "$conf"
	grep -q '^  transparent: true$' "$conf" || die "the example has no '# transparent: true' line"
}

active() { [ "$(inside systemctl is-active edgeward)" = active ]; }
inactive() { [ "$(inside systemctl is-active edgeward)" = inactive ]; }
prop() { inside systemctl show -p "$1" --value edgeward; }
# pinned reads the whole report first: grep -q leaving early would end
# status with SIGPIPE, which pipefail counts as a failure.
pinned() {
	local report
	report=$(inside edgeward status -c /etc/edgeward/edgeward.yaml) || true
	grep -q 'lan0 .*xdp_lan' <<<"$report"
}
dns_rules_intact() {
	local report
	report=$(inside edgeward status -c /etc/edgeward/edgeward.yaml -json) || true
	grep -q '"dns_rules": "intact"' <<<"$report"
}
restarted_since() { [ "$(prop NRestarts)" -gt "$1" ]; }
disabled() { [ "$(inside systemctl is-enabled edgeward 2>/dev/null)" != enabled ]; }
installed_inactive() { disabled && inactive; }

reload_twice() {
	inside systemctl reload edgeward && inside systemctl reload edgeward
}

invalid_reload_keeps_running() {
	inside cp /etc/edgeward/edgeward.yaml /root/good.yaml
	inside sh -c 'echo "bogus: 1" >>/etc/edgeward/edgeward.yaml'
	local rc=0
	inside systemctl reload edgeward 2>/dev/null || rc=$?
	inside cp /root/good.yaml /etc/edgeward/edgeward.yaml
	[ $rc -ne 0 ] && active
}

restart_keeps_pins() {
	inside systemctl restart edgeward && active && pinned
}

stop_keeps_pins() {
	inside systemctl stop edgeward && inactive && pinned
}

kill_main() {
	inside kill -9 "$(prop MainPID)"
}

# invalid_start_stays_failed starts the service on an invalid file: the
# daemon exits with status 2, and systemd must not restart it.
invalid_start_stays_failed() {
	local conf=$work/root/etc/edgeward/edgeward.yaml restarts rc=0
	cp "$conf" "$work/good.yaml"
	echo "bogus: 1" >>"$conf"
	inside systemctl start edgeward 2>/dev/null || true
	sleep 5
	restarts=$(prop NRestarts)
	[ "$(prop ExecMainStatus)" = 2 ] && [ "$(inside systemctl is-active edgeward)" = failed ] &&
		[ "$restarts" = 0 ] || rc=1
	cp "$work/good.yaml" "$conf"
	inside systemctl reset-failed edgeward
	return $rc
}

upgrade_restarts() {
	local pid
	pid=$(prop MainPID)
	inside dpkg -i /root/edgeward.deb >"$work/dpkg.log" 2>&1 &&
		wait_for 20 active && [ "$(prop MainPID)" != "$pid" ] && pinned
}

remove_stops_and_disables() {
	inside dpkg -r edgeward >"$work/dpkg.log" 2>&1 &&
		disabled && ! active && ! inside test -e /lib/systemd/system/edgeward.service
}

stays_down_after_unload() {
	inside edgeward unload -c /etc/edgeward/edgeward.yaml >/dev/null &&
		wait_for 10 inactive && sleep 5 && inactive && ! pinned
}

main() {
	[ "$(id -u)" -eq 0 ] || die "needs root: it boots a container"
	install_tools
	work=$(mktemp -d /tmp/edgeward-service.XXXXXX)

	local deb restarts
	deb=$(OUT="$work" scripts/package.sh)
	make_root "$deb"
	make_cgroup
	echo "test-service: booting systemd in a container"
	boot
	mount_cgroup2

	install_package
	check "installed: neither enabled nor started" installed_inactive
	inside systemctl enable --now edgeward >/dev/null 2>&1 || true
	check "without a bpffs and lan0 the service keeps restarting" \
		wait_for 10 restarted_since 1
	mount_bpffs
	add_interfaces
	check "with them it becomes active (READY=1)" wait_for 20 active
	check "transparent DNS: the iptables rules are in place" dns_rules_intact
	check "the socket guard is attached to the container's cgroup" guard_attached
	check "the host's root cgroup carries no program of ours" host_root_clean
	check "systemctl reload, twice" reload_twice
	check "an invalid file fails the reload; the service stays active" invalid_reload_keeps_running
	check "systemctl restart: active again, the policy pinned" restart_keeps_pins
	check "systemctl stop: inactive, the policy stays pinned" stop_keeps_pins
	inside systemctl start edgeward
	restarts=$(prop NRestarts)
	kill_main
	check "kill -9: systemd starts it again" wait_for 10 restarted_since "$restarts"
	check "kill -9: active again" wait_for 20 active
	check "upgrade: the daemon restarts on the pins" upgrade_restarts
	inside systemd-analyze security edgeward --no-pager 2>/dev/null | tail -1 || true
	check "edgeward unload: the service stays down, nothing pinned" stays_down_after_unload
	check "edgeward unload: no socket guard left on any cgroup" host_root_clean all
	check "an invalid file at start: failed with status 2, no restart" invalid_start_stays_failed
	inside systemctl start edgeward
	check "dpkg -r: the service is stopped and disabled" remove_stops_and_disables

	echo
	if [ $failed -gt 0 ]; then
		echo "test-service: $failed checks failed; journal:"
		inside journalctl -u edgeward --no-pager -n 40 | grep -v 'msg=deny' || true
		exit 1
	fi
	echo "test-service: all checks passed"
}

main "$@"
