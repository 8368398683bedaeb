package metrictest

import (
	"fmt"
	"io"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Family is the shape of one metric family in a scrape: what dashboards
// and alerts rely on, without the values that change from run to run.
type Family struct {
	Type string // counter, gauge, histogram, summary or untyped
	// Labels are the label names of the family's series, sorted; le and
	// quantile of histograms and summaries are left out.
	Labels []string
	// Values holds each label's values seen in the scrape, sorted.
	Values map[string][]string
}

// Shape renders the family's type and label names, e.g.
// "counter hook,reason,verdict": two scrapes of the same daemon have the
// same shapes whatever their values.
func (f Family) Shape() string {
	return strings.TrimSpace(f.Type + " " + strings.Join(f.Labels, ","))
}

// ParseScrape reads a scrape in the Prometheus text format and returns its
// families by name. It fails on anything the format does not allow, and
// on names outside the classic (non-UTF-8) character set.
func ParseScrape(r io.Reader) (map[string]Family, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse scrape: %w", err)
	}
	out := make(map[string]Family, len(mfs))
	for name, mf := range mfs {
		out[name] = familyOf(mf)
	}
	return out, nil
}

// familyOf collects the type and the label names and values of mf.
func familyOf(mf *dto.MetricFamily) Family {
	values := map[string]map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if values[l.GetName()] == nil {
				values[l.GetName()] = map[string]bool{}
			}
			values[l.GetName()][l.GetValue()] = true
		}
	}

	f := Family{Type: strings.ToLower(mf.GetType().String()), Values: map[string][]string{}}
	for name, set := range values {
		f.Labels = append(f.Labels, name)
		for v := range set {
			f.Values[name] = append(f.Values[name], v)
		}
		sort.Strings(f.Values[name])
	}
	sort.Strings(f.Labels)
	return f
}

// Shapes maps each family's name to its Shape.
func Shapes(families map[string]Family) map[string]string {
	out := make(map[string]string, len(families))
	for name, f := range families {
		out[name] = f.Shape()
	}
	return out
}
