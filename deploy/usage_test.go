package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/edgeward/edgeward/internal/metrictest"
)

// targetLabels are the labels Prometheus adds to every series it scrapes.
var targetLabels = []string{"instance", "job"}

// syntheticSeries are the series Prometheus writes itself for each target.
var syntheticSeries = map[string]metrictest.Family{"up": {Type: "gauge"}}

// literalAlternation is a regular expression that only lists values,
// such as drop|audit; usageProblems checks each of them.
var literalAlternation = regexp.MustCompile(`^[A-Za-z0-9_.-]+(\|[A-Za-z0-9_.-]+)*$`)

// series finds the family that a series name belongs to: the family
// itself, a synthetic series, or the _bucket, _sum or _count series of a
// histogram or summary. extra are the labels such a series adds (le of a
// bucket, quantile of a summary).
func series(golden map[string]metrictest.Family, name string) (f metrictest.Family, extra []string, ok bool) {
	if f, ok := golden[name]; ok {
		return f, nil, true
	}
	if f, ok := syntheticSeries[name]; ok {
		return f, nil, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, found := strings.CutSuffix(name, suffix)
		f, ok := golden[base]
		if !found || !ok {
			continue
		}
		switch {
		case f.Type == "histogram" && suffix == "_bucket":
			return f, []string{"le"}, true
		case f.Type == "histogram" || f.Type == "summary":
			return f, nil, true
		}
	}
	return metrictest.Family{}, nil, false
}

// usageProblems checks one PromQL expression against the golden scrape:
// it uses at least one metric, every metric exists, every matcher names
// a label of that metric, and every value it matches literally (= and !=,
// or a regex that only lists values) occurs in the golden scrape. Values
// with a Grafana variable ($instance) are not checked.
func usageProblems(expr string, golden map[string]metrictest.Family) []string {
	sels, err := selectors(expr)
	if err != nil {
		return []string{err.Error()}
	}
	if len(sels) == 0 {
		return []string{fmt.Sprintf("%q uses no metric", expr)}
	}
	var out []string
	for _, sel := range sels {
		f, extra, ok := series(golden, sel.Metric)
		if !ok {
			out = append(out, fmt.Sprintf("metric %s is not in %s", sel.Metric, goldenPath))
			continue
		}
		for _, m := range sel.Matchers {
			out = append(out, matcherProblems(sel.Metric, f, extra, m)...)
		}
	}
	return out
}

// matcherProblems checks one label matcher of metric, whose family is f.
func matcherProblems(metric string, f metrictest.Family, extra []string, m matcher) []string {
	if slices.Contains(targetLabels, m.Label) || slices.Contains(extra, m.Label) {
		return nil
	}
	if !slices.Contains(f.Labels, m.Label) {
		return []string{fmt.Sprintf("%s has no label %s (it has %v)", metric, m.Label, f.Labels)}
	}
	if strings.Contains(m.Value, "$") {
		return nil
	}

	var values []string
	switch {
	case m.Op == "=" || m.Op == "!=":
		values = []string{m.Value}
	case literalAlternation.MatchString(m.Value):
		values = strings.Split(m.Value, "|")
	}
	var out []string
	for _, v := range values {
		if !slices.Contains(f.Values[m.Label], v) {
			out = append(out, fmt.Sprintf("%s{%s%s%q}: %q is not a value of %s in %s (%v)",
				metric, m.Label, m.Op, m.Value, v, m.Label, goldenPath, f.Values[m.Label]))
		}
	}
	return out
}

func TestUsageProblems(t *testing.T) {
	golden := map[string]metrictest.Family{
		"p_total": {Type: "counter", Labels: []string{"verdict"},
			Values: map[string][]string{"verdict": {"drop", "pass"}}},
		"d_seconds": {Type: "histogram"},
		"g":         {Type: "gauge"},
	}
	for _, tc := range []struct {
		expr string
		want int // problems
	}{
		{`sum by (verdict) (rate(p_total{instance=~"$instance", verdict=~"drop|pass"}[5m]))`, 0},
		{`histogram_quantile(0.9, sum by (le) (rate(d_seconds_bucket{le="+Inf"}[5m]))) + d_seconds_sum + d_seconds_count`, 0},
		{`up{job="edgeward"} == 0 or absent(g)`, 0},
		{`p_total{verdict=~".*"}`, 0},
		{`missing_total`, 1},
		{`g_bucket + g_sum`, 2},
		{`p_total{verdicts="drop"}`, 1},
		{`p_total{verdict="dorp"}`, 1},
		{`p_total{verdict=~"drop|audit"}`, 1},
		{`p_total{verdict!="audit"}`, 1},
		{`vector(1)`, 1},
		{`p_total{verdict="drop"`, 1},
	} {
		if got := usageProblems(tc.expr, golden); len(got) != tc.want {
			t.Errorf("usageProblems(%q) = %q, want %d problems", tc.expr, got, tc.want)
		}
	}
}
