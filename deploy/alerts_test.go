package deploy

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// alertsPath holds the Prometheus alert rules.
const alertsPath = "prometheus/edgeward-alerts.yaml"

// severities are the values of labels.severity.
var severities = []string{"critical", "warning", "info"}

// alertMetrics are the metrics the alerts must watch (issue #7): drops,
// map pressure, reloads, rejected answers, spool age and loss, forwarder
// and tunnel, lost events, the socket guard; up covers a daemon that is
// down.
var alertMetrics = []string{
	"up", "edgeward_build_info", "edgeward_packets_total",
	"edgeward_policy_family_entries", "edgeward_policy_capacity",
	"edgeward_config_last_reload_failed", "edgeward_dns_queries_total",
	"edgeward_spool_oldest_record_age_seconds", "edgeward_spool_records_dropped_total",
	"edgeward_spool_upstream_up", "edgeward_interfaces_up", "edgeward_events_lost_total",
	"edgeward_socket_guard_attached", "edgeward_socket_options_denied_total",
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// loadRules decodes the rule file; unknown keys (a typo such as
// "anotations") are errors.
func loadRules(t *testing.T) ruleFile {
	t.Helper()
	data, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", alertsPath, err)
	}
	if len(f.Groups) == 0 {
		t.Fatalf("%s has no rule groups", alertsPath)
	}
	return f
}

// promDuration is Prometheus' duration syntax, units from ms to y.
var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// templateLabel finds $labels.name in annotation templates.
var templateLabel = regexp.MustCompile(`\$labels\.([A-Za-z_][A-Za-z0-9_]*)`)

// ruleProblems checks the form of one alert rule: name, duration,
// severity, summary and description, and that its annotations refer
// only to labels its metrics carry (labelsOf: metric -> label names).
func ruleProblems(r rule, labelsOf map[string][]string) []string {
	var out []string
	if !regexp.MustCompile(`^Edgeward[A-Z][A-Za-z0-9]*$`).MatchString(r.Alert) {
		out = append(out, fmt.Sprintf("alert %q: want a name like EdgewardSomething", r.Alert))
	}
	if !promDuration.MatchString(r.For) {
		out = append(out, fmt.Sprintf("for %q: want a duration such as 5m", r.For))
	}
	if !slices.Contains(severities, r.Labels["severity"]) {
		out = append(out, fmt.Sprintf("labels.severity %q: want one of %v", r.Labels["severity"], severities))
	}
	for _, key := range []string{"summary", "description"} {
		if r.Annotations[key] == "" {
			out = append(out, "annotations."+key+" is empty")
		}
	}
	return append(out, templateProblems(r, labelsOf)...)
}

// templateProblems lists $labels.x in annotations that no metric of the
// expression carries (nor instance or job).
func templateProblems(r rule, labelsOf map[string][]string) []string {
	sels, err := selectors(r.Expr)
	if err != nil {
		return nil // usageProblems reports it
	}
	known := slices.Clone(targetLabels)
	for _, s := range sels {
		known = append(known, labelsOf[s.Metric]...)
	}
	var out []string
	for key, text := range r.Annotations {
		for _, m := range templateLabel.FindAllStringSubmatch(text, -1) {
			if !slices.Contains(known, m[1]) {
				out = append(out, fmt.Sprintf("annotations.%s uses $labels.%s, which its metrics lack", key, m[1]))
			}
		}
	}
	return out
}

// TestAlertRules: every rule is well formed and every metric, label and
// literal label value it uses exists in the golden scrape.
func TestAlertRules(t *testing.T) {
	golden := loadGolden(t)
	labelsOf := map[string][]string{}
	for name, f := range golden {
		labelsOf[name] = f.Labels
	}
	seen := map[string]bool{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if seen[r.Alert] {
				t.Errorf("%s: alert %s defined twice", alertsPath, r.Alert)
			}
			seen[r.Alert] = true
			problems := append(ruleProblems(r, labelsOf), usageProblems(r.Expr, golden)...)
			for _, p := range problems {
				t.Errorf("%s: group %s, alert %s: %s", alertsPath, g.Name, r.Alert, p)
			}
		}
	}
}

// TestAlertRulesWatchIssueMetrics: the alerts watch each metric of
// alertMetrics.
func TestAlertRulesWatchIssueMetrics(t *testing.T) {
	exprs := map[string]string{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			exprs[r.Alert] = r.Expr
		}
	}
	used := usedMetrics(t, exprs)
	for _, m := range alertMetrics {
		if !used[m] {
			t.Errorf("%s: no alert watches %s", alertsPath, m)
		}
	}
}

func TestRuleProblems(t *testing.T) {
	labelsOf := map[string][]string{"x_total": {"stream"}}
	good := rule{
		Alert: "EdgewardX", Expr: "increase(x_total[5m]) > 0", For: "1h30m",
		Labels:      map[string]string{"severity": "warning"},
		Annotations: map[string]string{"summary": "{{ $labels.instance }} {{ $labels.stream }}", "description": "d"},
	}
	if got := ruleProblems(good, labelsOf); len(got) != 0 {
		t.Errorf("good rule: %q", got)
	}

	bad := rule{
		Alert: "x", Expr: "increase(x_total[5m]) > 0", For: "5 minutes",
		Labels:      map[string]string{"severity": "page"},
		Annotations: map[string]string{"summary": "{{ $labels.steam }}"},
	}
	if got := ruleProblems(bad, labelsOf); len(got) != 5 {
		t.Errorf("bad rule: %q, want 5 problems (name, for, severity, description, $labels.steam)", got)
	}
}

// TestREADMEListsAlerts: the README's alert table names every rule with
// its severity, and no rule that does not exist.
func TestREADMEListsAlerts(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	section, err := metricsSection(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, cells := range tableRows(section, "| alert |") {
		if len(cells) != 3 {
			t.Fatalf("alert row without 3 cells: %q", cells)
		}
		documented[strings.Trim(cells[0], "`")] = cells[2]
	}

	defined := map[string]string{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			defined[r.Alert] = r.Labels["severity"]
		}
	}
	if diff := cmp.Diff(defined, documented); diff != "" {
		t.Errorf("alerts and their severity: %s (-want) against the README (+got):\n%s", alertsPath, diff)
	}
}
