package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"testing"
)

// dashboardPath is the Grafana dashboard.
const dashboardPath = "grafana/edgeward.json"

// dsUID is how every panel names its data source: the import input, or
// the data source variable of the same name when provisioned from a file.
const dsUID = "${DS_PROMETHEUS}"

// dashboardMetrics are the metrics the dashboard must show (issue #7):
// drops, map pressure, learned entries, rejected answers, spool backlog,
// age and loss, tunnel and forwarder state, lost events.
var dashboardMetrics = []string{
	"edgeward_packets_total", "edgeward_policy_family_entries", "edgeward_policy_capacity",
	"edgeward_learned_capacity", "edgeward_policy_generation", "edgeward_config_last_reload_failed",
	"edgeward_dns_learned_addresses", "edgeward_dns_queries_total",
	"edgeward_spool_backlog_records", "edgeward_spool_backlog_bytes",
	"edgeward_spool_oldest_record_age_seconds", "edgeward_spool_records_dropped_total",
	"edgeward_spool_records_dead_lettered_total", "edgeward_interfaces_up",
	"edgeward_spool_upstream_up", "edgeward_events_lost_total",
	"edgeward_socket_options_denied_total", "edgeward_socket_guard_attached",
}

type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// variable is a templating variable; Query is a string or an object with
// a query field, depending on the Grafana version that saved it.
type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *datasource     `json:"datasource"`
	Query      json.RawMessage `json:"query"`
}

// loadDashboard decodes the dashboard, refusing unknown top-level
// mistakes only where decoding fails.
func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// allPanels flattens rows, collapsed or not.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardExprs returns every PromQL expression of the dashboard, keyed
// by where it is: panel targets and query variables.
func dashboardExprs(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := variableQuery(v.Query)
		if err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		if sel := labelValuesSelector(q); sel != "" {
			out["variable "+v.Name] = sel
		}
	}
	return out
}

// variableQuery reads a query variable's query, a string or {"query": s}.
func variableQuery(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("query is neither a string nor an object: %w", err)
	}
	return obj.Query, nil
}

var labelValuesCall = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)

// labelValuesSelector returns the series selector of a Grafana
// label_values(selector, label) query, "" for label_values(label); any
// other query is returned as it is, as PromQL.
func labelValuesSelector(q string) string {
	if m := labelValuesCall.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	if regexp.MustCompile(`^\s*label_values\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`).MatchString(q) {
		return ""
	}
	return q
}

// TestDashboardUsesGoldenMetrics: every metric, label and literal label
// value the dashboard queries exists in the golden scrape.
func TestDashboardUsesGoldenMetrics(t *testing.T) {
	golden := loadGolden(t)
	d := loadDashboard(t)
	exprs := dashboardExprs(t, d)
	if len(exprs) == 0 {
		t.Fatalf("%s has no queries", dashboardPath)
	}
	for where, expr := range exprs {
		for _, p := range usageProblems(expr, golden) {
			t.Errorf("%s: %s: %s", dashboardPath, where, p)
		}
	}
}

// TestDashboardShowsIssueMetrics: the dashboard shows each metric of
// dashboardMetrics somewhere.
func TestDashboardShowsIssueMetrics(t *testing.T) {
	used := usedMetrics(t, dashboardExprs(t, loadDashboard(t)))
	for _, m := range dashboardMetrics {
		if !used[m] {
			t.Errorf("%s does not show %s", dashboardPath, m)
		}
	}
}

// TestDashboardDataSource: the data source is an import input named
// DS_PROMETHEUS, and every panel and target uses it; panels have unique
// ids, titles and (except rows) queries.
func TestDashboardDataSource(t *testing.T) {
	d := loadDashboard(t)
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v, want one prometheus data source DS_PROMETHEUS", d.Inputs)
	}
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] || p.Title == "" {
			t.Errorf("panel %d %q: ids must be unique and titles set", p.ID, p.Title)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsUID || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %+v, %d targets; want %s and a query", p.Title, p.Datasource, len(p.Targets), dsUID)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != dsUID {
				t.Errorf("panel %q target %s: data source %+v, want %s", p.Title, tg.RefID, tg.Datasource, dsUID)
			}
		}
	}
}

// usedMetrics returns the metric names the expressions use.
func usedMetrics(t *testing.T, exprs map[string]string) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for where, expr := range exprs {
		sels, err := selectors(expr)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for _, s := range sels {
			used[s.Metric] = true
		}
	}
	return used
}

func TestLabelValuesSelector(t *testing.T) {
	for q, want := range map[string]string{
		"label_values(edgeward_build_info, instance)":        "edgeward_build_info",
		`label_values(edgeward_interfaces{role="vpn"}, job)`: `edgeward_interfaces{role="vpn"}`,
		"label_values(instance)":                             "",
		"sum(edgeward_policy_entries)":                       "sum(edgeward_policy_entries)",
	} {
		if got := labelValuesSelector(q); got != want {
			t.Errorf("labelValuesSelector(%q) = %q, want %q", q, got, want)
		}
	}
}
