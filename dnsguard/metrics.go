package dnsguard

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports a guard's metrics to Prometheus. Every label value
// comes from a fixed set (results) or from the configuration (patterns):
// never a resolved name or an address.
type Collector struct {
	g *Guard

	queries   *prometheus.Desc
	intercept *prometheus.Desc
	learned   *prometheus.Desc
	forgetErr *prometheus.Desc
	dropped   *prometheus.Desc
}

// NewCollector returns a collector for g; register it once.
func NewCollector(g *Guard) *Collector {
	return &Collector{
		g: g,
		queries: prometheus.NewDesc("edgeward_dns_queries_total",
			"DNS queries answered by the guard, by how they ended.", []string{"result"}, nil),
		intercept: prometheus.NewDesc("edgeward_dns_intercepted_total",
			"DNS messages of other clients and servers judged in transparent mode, by kind (query, answer) and result.",
			[]string{"kind", "result"}, nil),
		learned: prometheus.NewDesc("edgeward_dns_learned_addresses",
			"Addresses the guard holds learned and unexpired, by configured name pattern.", []string{"pattern"}, nil),
		forgetErr: prometheus.NewDesc("edgeward_dns_forget_errors_total",
			"Evictions the data plane failed to take (entries then expire by themselves).", nil, nil),
		dropped: prometheus.NewDesc("edgeward_dns_events_suppressed_total",
			"Guard events not passed to the daemon because of the rate limit.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queries
	ch <- c.intercept
	ch <- c.learned
	ch <- c.forgetErr
	ch <- c.dropped
	c.g.upstreamDur.Describe(ch)
	c.g.learnDur.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for r := range numResults {
		ch <- prometheus.MustNewConstMetric(c.queries, prometheus.CounterValue, float64(c.g.counts[r].Load()), r.String())
	}

	for kind, results := range c.g.InterceptedCounts() {
		for r, n := range results {
			ch <- prometheus.MustNewConstMetric(c.intercept, prometheus.CounterValue, float64(n), kind, r)
		}
	}

	counts := c.g.view.counts(c.g.opts.Now())
	for i, r := range c.g.match.Rules() {
		ch <- prometheus.MustNewConstMetric(c.learned, prometheus.GaugeValue, float64(counts[i]), r.Pattern)
	}

	ch <- prometheus.MustNewConstMetric(c.forgetErr, prometheus.CounterValue, float64(c.g.forgetErrs.Load()))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(c.g.events.droppedTotal()))
	c.g.upstreamDur.Collect(ch)
	c.g.learnDur.Collect(ch)
}
