package dnsguard

import (
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestCollector checks the metric names and that every label value comes
// from a fixed set or the configuration.
func TestCollector(t *testing.T) {
	up := startUpstream(t, answerWith(dns.RcodeSuccess, "a.x. 30 IN A 10.30.0.1", "a.x. 30 IN A 10.30.0.2"))
	r := startGuard(t, testConfig(up.addr, up.addr), Options{Learner: &fakeLearner{}})
	for _, name := range []string{"a.x.", "nope.example.com."} {
		if _, err := r.ask(t, query(name, dns.TypeA, 0), false, ""); err != nil {
			t.Fatalf("query: %v", err)
		}
	}

	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(NewCollector(r.g)); err != nil {
		t.Fatalf("register: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}

	got := map[string][]string{}
	for _, f := range families {
		got[f.GetName()] = sampleSummary(f)
	}
	want := map[string][]string{
		"edgeward_dns_queries_total": {
			"allowed=1", "denied=1", "forwarded=0", "malformed=0", "overloaded=0", "refused=0",
			"rejected_bad_answer=0", "rejected_learn_failed=0", "rejected_private_answer=0",
			"rejected_public_answer=0", "rejected_truncated=0", "upstream_error=0",
		},
		"edgeward_dns_learned_addresses": {
			"**.y=0", "*.x=2", "alias.example.com=0", "alias2.example.com=0", "api.example.com=0",
			"api.failover.test=0", "cdn.example.com=0", "dot.example.com=0", "many.example.com=0",
			"xn--mnchen-3ya.example.com=0",
		},
		"edgeward_dns_intercepted_total": {
			"answer/allowed=0", "answer/denied=0", "answer/forwarded=0", "answer/from_lan=0", "answer/malformed=0",
			"answer/rejected_bad_answer=0", "answer/rejected_learn_failed=0", "answer/rejected_private_answer=0",
			"answer/rejected_public_answer=0", "answer/rejected_truncated=0", "answer/unsolicited=0",
			"answer/wrong_server=0", "query/allowed=0", "query/denied=0", "query/forwarded=0", "query/from_lan=0",
			"query/malformed=0", "query/rejected_bad_answer=0", "query/rejected_learn_failed=0",
			"query/rejected_private_answer=0", "query/rejected_public_answer=0", "query/rejected_truncated=0",
			"query/unsolicited=0", "query/wrong_server=0",
		},
		"edgeward_dns_forget_errors_total":       {"=0"},
		"edgeward_dns_events_suppressed_total":   {"=0"},
		"edgeward_dns_upstream_duration_seconds": {"count=1"},
		"edgeward_dns_learn_duration_seconds":    {"count=1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// sampleSummary renders a family as sorted "labels=value" strings (label
// values joined with "/"), or
// "count=N" for a histogram.
func sampleSummary(f *dto.MetricFamily) []string {
	var out []string
	for _, m := range f.GetMetric() {
		if h := m.GetHistogram(); h != nil {
			out = append(out, "count="+strconv.FormatUint(h.GetSampleCount(), 10))
			continue
		}
		var values []string
		for _, l := range m.GetLabel() {
			values = append(values, l.GetValue())
		}
		label := strings.Join(values, "/")
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		out = append(out, label+"="+strconv.FormatUint(uint64(v), 10))
	}
	sort.Strings(out)
	return out
}
