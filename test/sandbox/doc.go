// Package sandbox builds a small network world in network namespaces for
// Edgeward's integration tests: an OT host, the gateway where the
// enforcer runs, an uplink side with an "internet", the proxy and an
// approved endpoint, and a cloud VPC reached through a WireGuard tunnel.
//
//	ns ot                        ns gw (the enforcer runs here)
//	+----------------------+     +-----------------------------------+
//	| eth0 10.10.0.2/24    |-----| lan0 10.10.0.1/24  fd00:10::1/64  |
//	|      fd00:10::2/64   | veth|                                   |
//	+----------------------+     | wgID 10.99.0.1/24  fd00:99::1/64  |==+
//	 default via gw              |      (wireguard-go, keepalive 1)  |  |
//	                             | wan0 198.51.100.2/24              |  |
//	                             |      2001:db8:100::2/64           |  |
//	                             +-----------------------------------+  |
//	                                  | veth                            |
//	ns wan ("internet")               |                                 |
//	+---------------------------------------------------------+         |
//	| eth0 198.51.100.1/24  2001:db8:100::1/64                |         |
//	| lo   192.0.2.80   2001:db8:2::80   internet host        |  Wire-  |
//	|      192.0.2.10   2001:db8:2::10   tinyproxy :3128      |  Guard, |
//	|      198.18.0.20  2001:db8:18::20  approved endpoint    |  UDP    |
//	| vpn0 203.0.113.1/24  2001:db8:113::1/64                 |  gw ->  |
//	+---------------------------------------------------------+  wan -> |
//	                                  | veth                     vpc    |
//	ns vpc (cloud)                    |                                 |
//	+---------------------------------------------------------+         |
//	| eth0 203.0.113.10/24  2001:db8:113::10/64               |         |
//	| wvID 10.99.0.2/24  fd00:99::2/64  (udp 51820)           |=========+
//	| lo   10.20.8.15   2001:db8:20::15  private endpoint     |
//	+---------------------------------------------------------+
//
// Servers (in this process, see [Sandbox.ListenHTTPS]):
//
//	internet host       192.0.2.80, 2001:db8:2::80     https 443, udp echo 5353
//	approved endpoint   198.18.0.20, 2001:db8:18::20   https 443, tcp echo 8443,
//	                                                   udp echo 5353
//	private endpoint    10.20.8.15, 2001:db8:20::15    https 443, tcp echo 8883,
//	                                                   udp echo 5353
//
// Routes: ot's default goes to gw; gw's default goes to wan, and
// 10.20.0.0/16 and 2001:db8:20::/48 go into wgID; wan routes the LAN
// (10.10.0.0/24, fd00:10::/64) back to gw and has no default route;
// vpc's default goes to wan and the LAN goes into wvID. gw and wan
// forward; nothing is translated. Nothing leaves the sandbox: the only
// way out of a namespace is a veth into another of its namespaces, and
// wan, where every default route ends, has none.
//
// # Invariants
//
//   - Nothing is created in the root network namespace: veth ends are
//     created directly in their namespaces and sysctls are written on
//     threads switched into them.
//   - Each sandbox has a cgroup v2 directory of its own for the socket
//     guard ("edgeward-sandbox-<ID>" below the hierarchy's root),
//     bind-mounted at Dir/cgroup ([Sandbox.Cgroup]), where `ip netns exec`
//     sees it. StartProcess and Command refuse an `edgeward run` whose
//     config names another paths.cgroup or none (the default is the root:
//     every process of the machine).
//   - Names are unique per sandbox: namespaces are "ew<ID>-<host>", the
//     WireGuard interfaces "wg<ID>" (matched by the enforcer's "wg*") and
//     "wv<ID>", because wireguard-go's control sockets in
//     /var/run/wireguard are shared by all namespaces.
//   - IPv6 duplicate address detection is off and Start waits for every
//     veth to be up, so addresses are usable when Start returns.
//   - Servers run in this process; their sockets were created on a thread
//     inside the target namespace and stay there.
//
// # Lifetime
//
// Close stops servers, then daemons (reverse start order, SIGTERM then
// SIGKILL), removes the WireGuard sockets, deletes the namespaces,
// removes the cgroup, unmounts the bpffs (dropping its pins) and removes
// Dir. Stop anything
// started outside [Sandbox.StartProcess] first. Daemons get SIGKILL when
// the test binary dies, but a binary killed by -timeout runs no cleanup:
// its namespaces, sockets, mount and folder stay until [SweepStale].
//
// # Compromises
//
// wireguard-go (userspace) stands in for kernel WireGuard, which this
// kernel lacks; the gateway's tunnel interface is a TUN device, so it has
// no Ethernet header. The proxy, the internet host and the approved
// endpoint share the wan namespace and reach the gateway over one link.
package sandbox
