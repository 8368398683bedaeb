package main

import (
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/loader"
)

// collector reads the kernel's counters and the daemon's state at scrape
// time. Labels carry only bounded sets: hooks, verdicts, reasons, roles,
// address families.
type collector struct {
	d *daemon

	packets, bytes   *prometheus.Desc
	policyEntries    *prometheus.Desc
	familyEntries    *prometheus.Desc
	policyCapacity   *prometheus.Desc
	policyGeneration *prometheus.Desc
	auditMode        *prometheus.Desc
	learnedCapacity  *prometheus.Desc
	interfaces       *prometheus.Desc
	interfacesUp     *prometheus.Desc
	attachErrors     *prometheus.Desc
	reloadFailed     *prometheus.Desc
	reloadTimestamp  *prometheus.Desc
	buildInfo        *prometheus.Desc
	scrapeErrors     *prometheus.Desc
	eventsLost       *prometheus.Desc
	eventLogSkipped  *prometheus.Desc
	socketDenied     *prometheus.Desc
	guardAttached    *prometheus.Desc
}

func newCollector(d *daemon) *collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("edgeward_"+name, help, labels, nil)
	}
	return &collector{
		d:                d,
		packets:          desc("packets_total", "Packets judged by the data plane, by hook, verdict and reason.", "hook", "verdict", "reason"),
		bytes:            desc("bytes_total", "Bytes of the packets judged by the data plane, by hook, verdict and reason.", "hook", "verdict", "reason"),
		policyEntries:    desc("policy_entries", "Entries of the active policy maps (IPv4 and IPv6 prefixes)."),
		familyEntries:    desc("policy_family_entries", "Entries of the active policy per address family (ipv4, ipv6).", "family"),
		policyCapacity:   desc("policy_capacity", "Most entries one policy may have per address family."),
		policyGeneration: desc("policy_generation", "Generation number of the active policy."),
		auditMode:        desc("audit_mode", "1 when the active policy only counts what it would drop."),
		learnedCapacity:  desc("learned_capacity", "Most destinations the learned map holds; past it the least recently used one is evicted."),
		interfaces:       desc("interfaces", "Interfaces of the gateway by role; enforced says whether the program is attached.", "role", "enforced"),
		interfacesUp:     desc("interfaces_up", "Interfaces of the gateway that are administratively up, by role.", "role"),
		attachErrors:     desc("attach_errors_total", "Uplinks the program could not be attached to."),
		reloadFailed:     desc("config_last_reload_failed", "1 when the last reload was rejected and the previous policy kept."),
		reloadTimestamp:  desc("config_last_reload_timestamp_seconds", "When the config was last reloaded (Unix time), 0 if never."),
		buildInfo:        desc("build_info", "Build information; the value is 1.", "version", "goversion"),
		eventsLost:       desc("events_lost_total", "Deny events the kernel did not send, by cause (rate_limited, ring_full).", "cause"),
		eventLogSkipped:  desc("event_log_lines_suppressed_total", "Deny events not written to the log because of its rate limit."),
		scrapeErrors:     desc("scrape_errors", "Kernel maps that could not be read during this scrape."),
		socketDenied: desc("socket_options_denied_total",
			"Socket options the socket guard refused (verdict drop) or, in audit mode, would have refused (audit), by reason.",
			"verdict", "reason"),
		guardAttached: desc("socket_guard_attached", "1 when the socket guard is attached to paths.cgroup."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	failures := 0
	maps := c.d.loader.Maps()

	if counters, err := maps.Counters(); err == nil {
		c.collectCounters(ch, counters)
	} else {
		failures++
	}
	if p, ok, err := maps.ActivePolicy(); err == nil && ok {
		c.collectPolicy(ch, p)
	} else if err != nil {
		failures++
	}
	c.collectInterfaces(ch)
	if losses, err := maps.EventLosses(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.eventsLost, prometheus.CounterValue, float64(losses.RateLimited), "rate_limited")
		ch <- prometheus.MustNewConstMetric(c.eventsLost, prometheus.CounterValue, float64(losses.RingFull), "ring_full")
	} else {
		failures++
	}
	if c.d.events != nil {
		ch <- prometheus.MustNewConstMetric(c.eventLogSkipped, prometheus.CounterValue, float64(c.d.events.suppressed.Load()))
	}

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.learnedCapacity, loader.MaxLearned)
	gauge(c.guardAttached, boolValue(c.d.guardAttached.Load() && c.d.loader.GuardHolds(c.d.guardDir)))
	gauge(c.reloadFailed, boolValue(c.d.reloadFailed.Load()))
	gauge(c.reloadTimestamp, float64(c.d.reloadedAt.Load()))
	gauge(c.buildInfo, 1, version, runtime.Version())
	gauge(c.scrapeErrors, float64(failures))
}

// collectCounters sends the kernel's counter cells, with every cell of
// counterGrid present even while it is zero: the packet hooks' cells as
// packets and bytes, the socket guard's as socket options denied (its
// unit is a call, not a packet).
func (c *collector) collectCounters(ch chan<- prometheus.Metric, counters []loader.Counter) {
	grid, _ := counterGrid() // without the names, only non-zero cells
	for _, k := range withZeroCells(counters, grid) {
		if k.Hook == loader.HookSocket {
			ch <- prometheus.MustNewConstMetric(c.socketDenied, prometheus.CounterValue, float64(k.Packets),
				k.Verdict.String(), k.Reason.String())
			continue
		}
		labels := []string{k.Hook.String(), k.Verdict.String(), k.Reason.String()}
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(k.Packets), labels...)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(k.Bytes), labels...)
	}
}

// counterGrid lists the counter cells a packet or a socket call can land
// in: each packet hook with verdict pass and an allowing reason, or with
// verdict drop or audit and a denying reason or unknown (as ew_verdict in
// bpf/edgeward.c); the socket hook with drop or audit and a socket
// reason (guard_sockopt). They are reported from the first scrape on, so
// that an alert on rate() sees a series before its first event. It fails
// when the reason names cannot be read from the object's BTF.
var counterGrid = sync.OnceValues(func() ([]loader.Counter, error) {
	reasons, err := loader.Reasons()
	if err != nil {
		return nil, err
	}
	var grid []loader.Counter
	for _, r := range reasons {
		if r.Socket() {
			grid = append(grid,
				loader.Counter{Hook: loader.HookSocket, Verdict: loader.VerdictDrop, Reason: r},
				loader.Counter{Hook: loader.HookSocket, Verdict: loader.VerdictAudit, Reason: r})
		}
	}
	for _, h := range loader.PacketHooks {
		for _, r := range reasons {
			if r.Socket() {
				continue
			}
			if r != loader.ReasonUnknown && r.Allows() {
				grid = append(grid, loader.Counter{Hook: h, Verdict: loader.VerdictPass, Reason: r})
				continue
			}
			grid = append(grid,
				loader.Counter{Hook: h, Verdict: loader.VerdictDrop, Reason: r},
				loader.Counter{Hook: h, Verdict: loader.VerdictAudit, Reason: r})
		}
	}
	return grid, nil
})

// withZeroCells returns counters and, for every cell of grid that is not
// among them, that cell at zero.
func withZeroCells(counters, grid []loader.Counter) []loader.Counter {
	type cell struct {
		h loader.Hook
		v loader.Verdict
		r loader.Reason
	}
	seen := make(map[cell]bool, len(counters))
	out := append([]loader.Counter(nil), counters...)
	for _, k := range counters {
		seen[cell{k.Hook, k.Verdict, k.Reason}] = true
	}
	for _, k := range grid {
		if !seen[cell{k.Hook, k.Verdict, k.Reason}] {
			out = append(out, loader.Counter{Hook: k.Hook, Verdict: k.Verdict, Reason: k.Reason})
		}
	}
	return out
}

func (c *collector) collectPolicy(ch chan<- prometheus.Metric, p loader.ActivePolicy) {
	ch <- prometheus.MustNewConstMetric(c.policyEntries, prometheus.GaugeValue, float64(p.Entries))
	ch <- prometheus.MustNewConstMetric(c.familyEntries, prometheus.GaugeValue, float64(p.Entries4), "ipv4")
	ch <- prometheus.MustNewConstMetric(c.familyEntries, prometheus.GaugeValue, float64(p.Entries6), "ipv6")
	ch <- prometheus.MustNewConstMetric(c.policyCapacity, prometheus.GaugeValue, loader.MaxRules)
	ch <- prometheus.MustNewConstMetric(c.policyGeneration, prometheus.GaugeValue, float64(p.Generation))
	ch <- prometheus.MustNewConstMetric(c.auditMode, prometheus.GaugeValue, boolValue(p.Audit))
}

// roles are the values of the role label, each reported even at zero.
var roles = []config.Role{config.RoleUplink, config.RoleVPN, config.RoleLAN, config.RoleIgnore, config.RoleLoopback}

// collectInterfaces counts interfaces per role, attachment and link
// state. Every role is reported, with zero where there is none, so series
// do not come and go: a tunnel that goes away shows as
// edgeward_interfaces_up{role="vpn"} 0, not as a missing series.
func (c *collector) collectInterfaces(ch chan<- prometheus.Metric) {
	links, attachErrors := c.d.enforcer.snapshot()

	type key struct {
		role     config.Role
		enforced bool
	}
	counts := map[key]int{}
	up := map[config.Role]int{}
	for _, st := range links {
		counts[key{st.role, len(st.attached) > 0}]++
		if st.link.Up {
			up[st.role]++
		}
	}
	gauge := func(d *prometheus.Desc, n int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), labels...)
	}
	for _, role := range roles {
		for _, enforced := range []bool{true, false} {
			gauge(c.interfaces, counts[key{role, enforced}], role.String(), boolLabel(enforced))
		}
		gauge(c.interfacesUp, up[role], role.String())
	}
	ch <- prometheus.MustNewConstMetric(c.attachErrors, prometheus.CounterValue, float64(attachErrors))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
