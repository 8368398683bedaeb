package metrictest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sampleScrape = `# HELP x_packets_total Packets.
# TYPE x_packets_total counter
x_packets_total{hook="a",verdict="drop"} 3
x_packets_total{hook="b",verdict="drop"} 0
# HELP x_up Up.
# TYPE x_up gauge
x_up 1
# HELP x_seconds Durations.
# TYPE x_seconds histogram
x_seconds_bucket{le="0.1"} 1
x_seconds_bucket{le="+Inf"} 2
x_seconds_sum 0.3
x_seconds_count 2
`

func TestParseScrape(t *testing.T) {
	got, err := ParseScrape(strings.NewReader(sampleScrape))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"x_packets_total": "counter hook,verdict",
		"x_up":            "gauge",
		"x_seconds":       "histogram",
	}
	if diff := cmp.Diff(want, Shapes(got)); diff != "" {
		t.Errorf("shapes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b"}, got["x_packets_total"].Values["hook"]); diff != "" {
		t.Errorf("hook values (-want +got):\n%s", diff)
	}
}

func TestParseScrapeRejectsMalformed(t *testing.T) {
	for _, text := range []string{
		"x_up{role=\"a\" 1\n",           // unclosed label set
		"# TYPE x_up gauge\nx_up one\n", // value not a number
		"x-up 1\n",                      // not a metric name
	} {
		if _, err := ParseScrape(strings.NewReader(text)); err == nil {
			t.Errorf("ParseScrape(%q) succeeded", text)
		}
	}
}
