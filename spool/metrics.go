package spool

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes a Spool's Stats as Prometheus metrics. Labels are
// bounded: stream names are capped by Options.MaxStreams and reasons are
// the fixed DropReasons.
type Collector struct {
	s *Spool

	appended, forwarded, dropped *prometheus.Desc
	backlogBytes, backlogRecords *prometheus.Desc
	oldestAge, diskBytes, fsync  *prometheus.Desc
	metaErrors                   *prometheus.Desc
}

// NewCollector returns a collector for s; register it with a
// prometheus.Registerer. It reads only in-memory state at scrape time.
func NewCollector(s *Spool) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("edgeward_spool_"+name, help, labels, nil)
	}
	return &Collector{
		s:              s,
		appended:       d("records_appended_total", "Records appended and made durable.", "stream"),
		forwarded:      d("records_forwarded_total", "Records acknowledged upstream.", "stream"),
		dropped:        d("records_dropped_total", "Records dropped without being forwarded.", "stream", "reason"),
		backlogBytes:   d("backlog_bytes", "Bytes of records not yet acknowledged.", "stream"),
		backlogRecords: d("backlog_records", "Records not yet acknowledged.", "stream"),
		oldestAge:      d("oldest_record_age_seconds", "Age of the oldest record not yet acknowledged.", "stream"),
		diskBytes:      d("disk_bytes", "Bytes of segment files of all streams."),
		fsync:          d("fsync_duration_seconds", "Duration of fsync calls."),
		metaErrors:     d("metadata_errors_total", "Failed cursor or loss log writes while dropping records."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.appended, c.forwarded, c.dropped, c.backlogBytes, c.backlogRecords,
		c.oldestAge, c.diskBytes, c.fsync, c.metaErrors,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for _, ss := range st.Streams {
		c.collectStream(ch, ss)
	}

	ch <- prometheus.MustNewConstMetric(c.diskBytes, prometheus.GaugeValue, float64(st.DiskBytes))
	ch <- prometheus.MustNewConstMetric(c.metaErrors, prometheus.CounterValue, float64(st.MetadataErrors))
	ch <- prometheus.MustNewConstHistogram(c.fsync, st.Fsyncs, st.FsyncSeconds, st.FsyncBuckets)
}

// collectStream sends the metrics of one stream.
func (c *Collector) collectStream(ch chan<- prometheus.Metric, ss StreamStats) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, ss.Stream)
	}

	counter(c.appended, ss.Appended, ss.Stream)
	counter(c.forwarded, ss.Forwarded, ss.Stream)
	for _, r := range DropReasons {
		counter(c.dropped, ss.Dropped[r], ss.Stream, string(r))
	}
	gauge(c.backlogBytes, float64(ss.BacklogBytes))
	gauge(c.backlogRecords, float64(ss.BacklogRecords))
	gauge(c.oldestAge, ss.OldestAge.Seconds())
}
