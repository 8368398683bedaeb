// Command edgeward is Edgeward's daemon and command-line tool: one binary
// for a Linux gateway between a factory network and the cloud.
//
//	edgeward run      -c FILE   load the policy, enforce it, serve metrics
//	edgeward validate -c FILE   check a config without touching the kernel
//	edgeward status   -c FILE   show what the kernel enforces (from the pins)
//	                            and the daemon's DNS, spool and forwarder
//	edgeward unload   -c FILE   remove every program, link, map and pin
//	edgeward version
//
// Data flow of run:
//
//	config file ──► config.Load ──► loader.Compile ──► loader.ApplyPolicy
//	                                                    (one map swap)
//	netwatch (rtnetlink) ──► enforcer ──► loader.Attach / Detach (per uplink)
//	paths.cgroup ──► config.GuardCgroup ──► loader.AttachSocketGuard (once)
//	/metrics scrape ──► collector ──► kernel counters and policy, read then
//
// The daemon owns the process: signals (SIGHUP reloads, SIGINT and SIGTERM
// stop), logs (log/slog, never per packet) and the metrics endpoint. What it
// puts in the kernel is pinned and outlives it: stopping or killing the
// daemon leaves the last policy enforcing; only unload removes it. Under
// systemd (packaging/edgeward.service, Type=notify) it sends READY=1 once
// every interface is enforced and its services listen, and STOPPING=1
// when it stops.
package main
