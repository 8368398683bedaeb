package spool

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/internal/metrictest"
)

func TestCollector(t *testing.T) {
	s, _ := openSpool(t, Options{})
	mustAppend(t, s, "m", "1", "2", "3")
	r := s.NewReader()
	defer r.Close()
	if err := r.Ack("m", 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Discard("m", 2, DropDeadLetter); err != nil {
		t.Fatal(err)
	}

	got := metrictest.Gather(t, NewCollector(s))
	want := map[string]float64{
		"edgeward_spool_records_appended_total{stream=m}":                   3,
		"edgeward_spool_records_forwarded_total{stream=m}":                  1,
		"edgeward_spool_records_dropped_total{reason=dead_letter,stream=m}": 1,
		"edgeward_spool_records_dropped_total{reason=max_age,stream=m}":     0,
		"edgeward_spool_records_dropped_total{reason=full,stream=m}":        0,
		"edgeward_spool_records_dropped_total{reason=corrupt,stream=m}":     0,
		"edgeward_spool_records_dropped_total{reason=quarantined,stream=m}": 0,
		"edgeward_spool_records_dropped_total{reason=missing,stream=m}":     0,
		"edgeward_spool_backlog_records{stream=m}":                          1,
		"edgeward_spool_backlog_bytes{stream=m}":                            33,
		"edgeward_spool_oldest_record_age_seconds{stream=m}":                got["edgeward_spool_oldest_record_age_seconds{stream=m}"],
		"edgeward_spool_disk_bytes{}":                                       99,
		"edgeward_spool_metadata_errors_total{}":                            0,
		"edgeward_spool_fsync_duration_seconds{}":                           got["edgeward_spool_fsync_duration_seconds{}"],
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	if got["edgeward_spool_fsync_duration_seconds{}"] < 1 {
		t.Errorf("fsync histogram is empty")
	}
}
