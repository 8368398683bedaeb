package main

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/loader"
)

// collector reads the kernel's counters and the daemon's state at scrape
// time. Labels carry only bounded sets: hooks, verdicts, reasons, roles.
type collector struct {
	d *daemon

	packets, bytes   *prometheus.Desc
	policyEntries    *prometheus.Desc
	policyCapacity   *prometheus.Desc
	policyGeneration *prometheus.Desc
	auditMode        *prometheus.Desc
	interfaces       *prometheus.Desc
	attachErrors     *prometheus.Desc
	reloadFailed     *prometheus.Desc
	reloadTimestamp  *prometheus.Desc
	buildInfo        *prometheus.Desc
	scrapeErrors     *prometheus.Desc
	eventsLost       *prometheus.Desc
	eventLogSkipped  *prometheus.Desc
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
		policyCapacity:   desc("policy_capacity", "Most entries one policy may have."),
		policyGeneration: desc("policy_generation", "Generation number of the active policy."),
		auditMode:        desc("audit_mode", "1 when the active policy only counts what it would drop."),
		interfaces:       desc("interfaces", "Interfaces of the gateway by role; enforced says whether the program is attached.", "role", "enforced"),
		attachErrors:     desc("attach_errors_total", "Uplinks the program could not be attached to."),
		reloadFailed:     desc("config_last_reload_failed", "1 when the last reload was rejected and the previous policy kept."),
		reloadTimestamp:  desc("config_last_reload_timestamp_seconds", "When the config was last reloaded (Unix time), 0 if never."),
		buildInfo:        desc("build_info", "Build information; the value is 1.", "version", "goversion"),
		eventsLost:       desc("events_lost_total", "Deny events the kernel did not send, by cause (rate_limited, ring_full).", "cause"),
		eventLogSkipped:  desc("event_log_lines_suppressed_total", "Deny events not written to the log because of its rate limit."),
		scrapeErrors:     desc("scrape_errors", "Kernel maps that could not be read during this scrape."),
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
	gauge(c.reloadFailed, boolValue(c.d.reloadFailed.Load()))
	gauge(c.reloadTimestamp, float64(c.d.reloadedAt.Load()))
	gauge(c.buildInfo, 1, version, runtime.Version())
	gauge(c.scrapeErrors, float64(failures))
}

func (c *collector) collectCounters(ch chan<- prometheus.Metric, counters []loader.Counter) {
	for _, k := range counters {
		labels := []string{k.Hook.String(), k.Verdict.String(), k.Reason.String()}
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(k.Packets), labels...)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(k.Bytes), labels...)
	}
}

func (c *collector) collectPolicy(ch chan<- prometheus.Metric, p loader.ActivePolicy) {
	ch <- prometheus.MustNewConstMetric(c.policyEntries, prometheus.GaugeValue, float64(p.Entries))
	ch <- prometheus.MustNewConstMetric(c.policyCapacity, prometheus.GaugeValue, loader.MaxRules)
	ch <- prometheus.MustNewConstMetric(c.policyGeneration, prometheus.GaugeValue, float64(p.Generation))
	ch <- prometheus.MustNewConstMetric(c.auditMode, prometheus.GaugeValue, boolValue(p.Audit))
}

// collectInterfaces counts interfaces per role and attachment. Every role
// is reported, with zero where there is none, so series do not come and go.
func (c *collector) collectInterfaces(ch chan<- prometheus.Metric) {
	links, attachErrors := c.d.enforcer.snapshot()

	type key struct {
		role     config.Role
		enforced bool
	}
	counts := map[key]int{}
	for _, st := range links {
		counts[key{st.role, len(st.attached) > 0}]++
	}
	for _, role := range []config.Role{config.RoleUplink, config.RoleVPN, config.RoleLAN, config.RoleIgnore, config.RoleLoopback} {
		for _, enforced := range []bool{true, false} {
			n := counts[key{role, enforced}]
			ch <- prometheus.MustNewConstMetric(c.interfaces, prometheus.GaugeValue, float64(n), role.String(), boolLabel(enforced))
		}
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
