package forward

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Batch results, the values of the result label.
const (
	resultOK       = "ok"       // acknowledged
	resultFailed   = "failed"   // link failure or timeout: retried
	resultRejected = "rejected" // the upstream refused it for good
)

// durationBuckets are the upper bounds, in seconds, of the batch
// duration histogram: from a LAN broker to a slow LTE link.
var durationBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// metrics are the forwarder's counters; client_golang makes them safe
// for concurrent use.
type metrics struct {
	batches  *prometheus.CounterVec
	dead     *prometheus.CounterVec
	duration prometheus.Histogram
}

// newMetrics creates the counters, with every result at zero.
func newMetrics() *metrics {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeward_spool_forward_batches_total",
			Help: "Batches sent upstream, by result (ok, failed, rejected).",
		}, []string{"result"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeward_spool_records_dead_lettered_total",
			Help: "Records the upstream rejected for good, moved to the dead-letter stream.",
		}, []string{"stream"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edgeward_spool_forward_duration_seconds",
			Help:    "Time from sending a batch to its acknowledgement or failure.",
			Buckets: durationBuckets,
		}),
	}
	for _, r := range []string{resultOK, resultFailed, resultRejected} {
		m.batches.WithLabelValues(r)
	}
	return m
}

// observe counts one batch.
func (m *metrics) observe(result string, d time.Duration) {
	m.batches.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}

// Collector exposes a Forwarder's state and counters as Prometheus
// metrics. The stream label is bounded by the spool's MaxStreams.
// Every stream the forwarder sends has its dead-letter counter, at zero
// until a record of it is dead-lettered, so that an alert on its rate()
// sees the series before the first dead letter.
type Collector struct {
	f  *Forwarder
	up *prometheus.Desc
}

// NewCollector returns a collector for f; register it with a
// prometheus.Registerer next to spool.NewCollector.
func NewCollector(f *Forwarder) *Collector {
	return &Collector{
		f: f,
		up: prometheus.NewDesc("edgeward_spool_upstream_up",
			"1 while the forwarder's upstream link is up.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	c.f.metrics.batches.Describe(ch)
	c.f.metrics.dead.Describe(ch)
	c.f.metrics.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if c.f.State().Up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	for _, stream := range c.f.forwardedStreams() {
		c.f.metrics.dead.WithLabelValues(stream)
	}
	c.f.metrics.batches.Collect(ch)
	c.f.metrics.dead.Collect(ch)
	c.f.metrics.duration.Collect(ch)
}
