// Package metrictest reads a Prometheus collector's samples in tests.
package metrictest

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Gather registers c on a pedantic registry, which fails the test on an
// inconsistent or malformed metric, and returns every sample keyed as
// name{label=value,...} with labels sorted by name. A counter or gauge
// maps to its value, a histogram to its sample count.
func Gather(tb testing.TB, c prometheus.Collector) map[string]float64 {
	tb.Helper()

	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		tb.Fatalf("register: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}

	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			got[key(mf.GetName(), m)] = value(m)
		}
	}
	return got
}

// key renders name{label=value,...}.
func key(name string, m *dto.Metric) string {
	var labels []string
	for _, l := range m.GetLabel() {
		labels = append(labels, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(labels)
	return name + "{" + strings.Join(labels, ",") + "}"
}

// value returns a counter or gauge value, or a histogram's sample count;
// -1 for any other type.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}
