package forward

import (
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCollector checks the metric names, labels and values.
func TestCollector(t *testing.T) {
	f := newForwarder(t, openSpool(t), Options{URL: "https://127.0.0.1:1/"})
	f.linkUp()
	f.metrics.observe(resultOK, 20*time.Millisecond)
	f.metrics.observe(resultOK, 30*time.Millisecond)
	f.metrics.observe(resultRejected, time.Millisecond)
	f.deadLettered("line1")

	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(NewCollector(f)); err != nil {
		t.Fatalf("register: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}

	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				got[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				got[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"edgeward_spool_upstream_up{}":                             1,
		"edgeward_spool_forward_batches_total{result=ok}":          2,
		"edgeward_spool_forward_batches_total{result=failed}":      0,
		"edgeward_spool_forward_batches_total{result=rejected}":    1,
		"edgeward_spool_records_dead_lettered_total{stream=line1}": 1,
		"edgeward_spool_forward_duration_seconds{}_count":          3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}

	f.failed(errors.New("down"))
	if f.State().Up {
		t.Errorf("still up after a failure")
	}
}
