package forward

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/internal/metrictest"
)

// TestCollector checks the metric names, labels and values.
func TestCollector(t *testing.T) {
	f := newForwarder(t, openSpool(t), Options{URL: "https://127.0.0.1:1/"})
	f.linkUp()
	f.metrics.observe(resultOK, 20*time.Millisecond)
	f.metrics.observe(resultOK, 30*time.Millisecond)
	f.metrics.observe(resultRejected, time.Millisecond)
	f.deadLettered("line1")

	got := metrictest.Gather(t, NewCollector(f))
	want := map[string]float64{
		"edgeward_spool_upstream_up{}":                             1,
		"edgeward_spool_forward_batches_total{result=ok}":          2,
		"edgeward_spool_forward_batches_total{result=failed}":      0,
		"edgeward_spool_forward_batches_total{result=rejected}":    1,
		"edgeward_spool_records_dead_lettered_total{stream=line1}": 1,
		"edgeward_spool_forward_duration_seconds{}":                3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}

	f.failed(errors.New("down"))
	if f.State().Up {
		t.Errorf("still up after a failure")
	}
}

// TestCollectorDeadLettersAtZero: every stream the forwarder sends has a
// dead-letter counter from the start; dead-letter streams have none.
func TestCollectorDeadLettersAtZero(t *testing.T) {
	s := openSpool(t)
	appendRecords(t, s, "line1", 1, 1)
	appendRecords(t, s, "line2", 1, 1)
	appendRecords(t, s, "line2.dead", 1, 1)
	f := newForwarder(t, s, Options{URL: "https://127.0.0.1:1/"})
	f.deadLettered("line2")

	got := map[string]float64{}
	for k, v := range metrictest.Gather(t, NewCollector(f)) {
		if strings.HasPrefix(k, "edgeward_spool_records_dead_lettered_total") {
			got[k] = v
		}
	}
	want := map[string]float64{
		"edgeward_spool_records_dead_lettered_total{stream=line1}": 0,
		"edgeward_spool_records_dead_lettered_total{stream=line2}": 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dead-letter counters (-want +got):\n%s", diff)
	}
}
