package deploy

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/edgeward/edgeward/internal/metrictest"
)

// goldenPath is the committed scrape; TestGoldenScrape in
// test/integration keeps it equal to the daemon's.
const goldenPath = "metrics.golden"

// boundedLabels are the label names a metric may carry, each with what
// bounds its values. A new label is added here with its bound, and the
// README says the same.
var boundedLabels = map[string]string{
	"hook":      "the hooks of bpf/reasons.h",
	"verdict":   "pass, drop, audit",
	"reason":    "the reasons of bpf/reasons.h, or the spool's drop reasons",
	"role":      "the five interface roles",
	"enforced":  "true or false",
	"family":    "ipv4 or ipv6",
	"cause":     "rate_limited or ring_full, or the DNS queue's queue_full, receive_overrun, unparsable",
	"kind":      "query or answer",
	"result":    "the DNS guard's results, or ok, failed, rejected",
	"stream":    "spool streams: at most 256 plus one dead-letter stream each",
	"pattern":   "the dns.names[].match entries of the config",
	"version":   "one value per binary",
	"goversion": "one value per binary",
}

// unboundedLabels would carry addresses, names, ports or free text, whose
// values have no bound: never a label.
var unboundedLabels = []string{
	"addr", "address", "ip", "src", "dst", "source", "destination",
	"port", "sport", "dport", "name", "qname", "domain", "host", "hostname",
	"client", "peer", "url", "path", "topic", "interface", "iface",
	"device", "ifindex", "user", "id", "error", "err", "msg",
}

// loadGolden parses the golden scrape.
func loadGolden(t *testing.T) map[string]metrictest.Family {
	t.Helper()
	data, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	families, err := metrictest.ParseScrape(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", goldenPath, err)
	}
	if len(families) == 0 {
		t.Fatalf("%s holds no metric family", goldenPath)
	}
	return families
}

// TestGoldenScrapeLint: promlint, the linter of client_golang's testutil,
// finds nothing in the golden scrape (naming, units, _total on counters,
// help texts, reserved suffixes).
func TestGoldenScrapeLint(t *testing.T) {
	data, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(bytes.NewReader(data)).Lint()
	if err != nil {
		t.Fatalf("lint %s: %v", goldenPath, err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s: %s", goldenPath, p.Metric, p.Text)
	}
}

// TestGoldenScrapeLabelsBounded: every label name of the golden scrape
// has a declared bound, none is an address or a name, and no label value
// is an IP address.
func TestGoldenScrapeLabelsBounded(t *testing.T) {
	for _, p := range labelProblems(loadGolden(t)) {
		t.Error(p)
	}
}

// labelProblems lists the labels of families that are unbounded or
// undeclared and the label values that are addresses.
func labelProblems(families map[string]metrictest.Family) []string {
	var out []string
	for name, f := range families {
		for _, l := range f.Labels {
			switch {
			case slices.Contains(unboundedLabels, l):
				out = append(out, fmt.Sprintf("%s: label %q has no bound; never use an address or a name as a label", name, l))
			case boundedLabels[l] == "":
				out = append(out, fmt.Sprintf("%s: label %q is not in boundedLabels: declare what bounds it (and say so in the README)", name, l))
			}
			for _, v := range f.Values[l] {
				if isAddress(v) {
					out = append(out, fmt.Sprintf("%s: label %s=%q is an address", name, l, v))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// isAddress tells whether v is an IP address, with or without a port or
// a prefix length.
func isAddress(v string) bool {
	_, errAddr := netip.ParseAddr(v)
	_, errPort := netip.ParseAddrPort(v)
	_, errPrefix := netip.ParsePrefix(v)
	return errAddr == nil || errPort == nil || errPrefix == nil
}

func TestLabelProblemsCatchUnboundedLabels(t *testing.T) {
	families := map[string]metrictest.Family{
		"x_total": {Type: "counter", Labels: []string{"dst", "hook"},
			Values: map[string][]string{"dst": {"10.0.0.1"}, "hook": {"tc_egress"}}},
		"y": {Type: "gauge", Labels: []string{"colour"},
			Values: map[string][]string{"colour": {"[2001:db8::1]:53"}}},
		"z": {Type: "gauge", Labels: []string{"stream"}, Values: map[string][]string{"stream": {"line1"}}},
	}
	want := []string{
		`x_total: label "dst" has no bound; never use an address or a name as a label`,
		`x_total: label dst="10.0.0.1" is an address`,
		`y: label "colour" is not in boundedLabels: declare what bounds it (and say so in the README)`,
		`y: label colour="[2001:db8::1]:53" is an address`,
	}
	if got := labelProblems(families); !slices.Equal(got, want) {
		t.Errorf("problems:\n%q\nwant:\n%q", got, want)
	}
}

func TestLabelListsDisjoint(t *testing.T) {
	for _, l := range unboundedLabels {
		if boundedLabels[l] != "" {
			t.Errorf("label %q is both bounded and unbounded", l)
		}
	}
}
