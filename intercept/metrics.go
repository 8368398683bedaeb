package intercept

import "github.com/prometheus/client_golang/prometheus"

// Collector exports what a queue lost, read at scrape time.
type Collector struct {
	q       *Queue
	dropped *prometheus.Desc
	waiting *prometheus.Desc
	errors  *prometheus.Desc
	restore *prometheus.Desc
}

// NewCollector returns a collector for q; register it once.
func NewCollector(q *Queue) *Collector {
	return &Collector{
		q: q,
		dropped: prometheus.NewDesc("edgeward_dns_queue_dropped_total",
			"Intercepted DNS packets dropped without a judgement, by cause: queue_full (the kernel's queue was full), "+
				"receive_overrun (the reader's socket buffer was full), unparsable (not an IP/UDP datagram).",
			[]string{"cause"}, nil),
		waiting: prometheus.NewDesc("edgeward_dns_queue_waiting",
			"Intercepted DNS packets waiting in the kernel's queue for a verdict.", nil, nil),
		errors: prometheus.NewDesc("edgeward_dns_queue_verdict_errors_total",
			"Verdicts the kernel did not take; it drops such packets.", nil, nil),
		restore: prometheus.NewDesc("edgeward_dns_rules_restored_total",
			"Times the transparent mode's iptables rules were found changed by another program and put back.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.dropped
	ch <- c.waiting
	ch <- c.errors
	ch <- c.restore
}

// Collect implements prometheus.Collector. The kernel's counters read as
// zero when its statistics cannot be read.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s, _ := c.q.Stats()
	for cause, n := range map[string]uint64{
		"queue_full":      s.QueueFull,
		"receive_overrun": s.Overruns + s.ENOBUFS,
		"unparsable":      s.Unparsable,
	} {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), cause)
	}
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(s.Waiting))
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(s.VerdictErrs))
	ch <- prometheus.MustNewConstMetric(c.restore, prometheus.CounterValue, float64(s.Restores))
}
