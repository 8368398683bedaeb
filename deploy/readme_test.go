package deploy

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/internal/metrictest"
)

// readmePath is the README whose Metrics section documents every family.
const readmePath = "../README.md"

// openLabels have values that the README cannot list: they come from the
// configuration, the producers or the build.
var openLabels = map[string]bool{"stream": true, "pattern": true, "version": true, "goversion": true}

// docRow is one row of the README's metric table.
type docRow struct {
	Type   string
	Labels []string // label names, without the values in parentheses
}

var (
	backticked    = regexp.MustCompile("`([^`]+)`")
	parenthesised = regexp.MustCompile(`\([^)]*\)`)
)

// metricsSection returns the text of README.md from "## Metrics" to the
// next second-level heading.
func metricsSection(readme string) (string, error) {
	_, rest, ok := strings.Cut(readme, "\n## Metrics\n")
	if !ok {
		return "", fmt.Errorf("%s has no \"## Metrics\" section", readmePath)
	}
	section, _, _ := strings.Cut(rest, "\n## ")
	return section, nil
}

// tableRows returns the cells of the body rows of every Markdown table in
// section whose header row starts with header, such as "| metric |".
func tableRows(section, header string) [][]string {
	var rows [][]string
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case !strings.HasPrefix(line, "|"):
			inTable = false
		case strings.HasPrefix(line, header):
			inTable = true
		case inTable && !strings.HasPrefix(line, "|---"):
			cells := strings.Split(strings.Trim(line, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			rows = append(rows, cells)
		}
	}
	return rows
}

// docRows reads the metric table: | `name` | type | labels | meaning |.
func docRows(section string) (map[string]docRow, error) {
	rows := map[string]docRow{}
	for _, cells := range tableRows(section, "| metric |") {
		if len(cells) != 4 {
			return nil, fmt.Errorf("metric row without 4 cells: %q", cells)
		}
		name := strings.Trim(cells[0], "`")
		if _, dup := rows[name]; dup {
			return nil, fmt.Errorf("metric %s documented twice", name)
		}
		row := docRow{Type: cells[1]}
		for _, m := range backticked.FindAllStringSubmatch(parenthesised.ReplaceAllString(cells[2], ""), -1) {
			row.Labels = append(row.Labels, m[1])
		}
		sort.Strings(row.Labels)
		rows[name] = row
	}
	return rows, nil
}

// docProblems compares the README's rows with the golden families: every
// family documented with its type and exactly its label names, no row
// for a family that does not exist, and every value of a bounded label
// written (backticked) somewhere in the section.
func docProblems(families map[string]metrictest.Family, section string) ([]string, error) {
	rows, err := docRows(section)
	if err != nil {
		return nil, err
	}
	var out []string
	for name, f := range families {
		row, ok := rows[name]
		if !ok {
			out = append(out, fmt.Sprintf("%s (%s) is not in the README's metric table", name, f.Shape()))
			continue
		}
		if row.Type != f.Type {
			out = append(out, fmt.Sprintf("%s: README says %s, the scrape %s", name, row.Type, f.Type))
		}
		if !slices.Equal(row.Labels, f.Labels) {
			out = append(out, fmt.Sprintf("%s: README lists labels %v, the scrape has %v", name, row.Labels, f.Labels))
		}
		out = append(out, undocumentedValues(name, f, section)...)
	}
	for name := range rows {
		if _, ok := families[name]; !ok {
			out = append(out, fmt.Sprintf("README documents %s, which the golden scrape lacks", name))
		}
	}
	sort.Strings(out)
	return out, nil
}

// undocumentedValues lists the values of f's bounded labels that section
// does not mention in backticks.
func undocumentedValues(name string, f metrictest.Family, section string) []string {
	var out []string
	for _, l := range f.Labels {
		if openLabels[l] {
			continue
		}
		for _, v := range f.Values[l] {
			if !strings.Contains(section, "`"+v+"`") {
				out = append(out, fmt.Sprintf("%s: value %s=%q is not in the README's Metrics section", name, l, v))
			}
		}
	}
	return out
}

// TestREADMEDocumentsGoldenScrape: the README's metric table matches the
// golden scrape, so the documentation cannot drift from the daemon.
func TestREADMEDocumentsGoldenScrape(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	section, err := metricsSection(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	problems, err := docProblems(loadGolden(t), section)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func TestDocProblems(t *testing.T) {
	families := map[string]metrictest.Family{
		"a_total": {Type: "counter", Labels: []string{"hook", "verdict"},
			Values: map[string][]string{"hook": {"tc_egress"}, "verdict": {"drop", "pass"}}},
		"b": {Type: "gauge"},
		"c": {Type: "gauge", Labels: []string{"stream"}, Values: map[string][]string{"stream": {"line1"}}},
		"d": {Type: "histogram"},
	}
	section := "\n| metric | type | labels | meaning |\n|---|---|---|---|\n" +
		"| `a_total` | counter | `hook`, `verdict` (`pass`) | packets |\n" +
		"| `b` | counter | | wrong type |\n" +
		"| `c` | gauge | `stream`, `extra` | one label too many |\n" +
		"| `gone` | gauge | | no longer exists |\n" +
		"\nHooks: `tc_egress`.\n\n| alert | fires when |\n|---|---|\n| `Gone` | never |\n"
	want := []string{
		"README documents gone, which the golden scrape lacks",
		`a_total: value verdict="drop" is not in the README's Metrics section`,
		"b: README says counter, the scrape gauge",
		"c: README lists labels [extra stream], the scrape has [stream]",
		"d (histogram) is not in the README's metric table",
	}
	got, err := docProblems(families, section)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%q\nwant:\n%q", got, want)
	}

	if _, err := docRows("| metric | type | labels | meaning |\n| `a` | gauge | `x` | one |\n| `a` | gauge | | twice |"); err == nil {
		t.Error("a metric documented twice was accepted")
	}
}

func TestTableRows(t *testing.T) {
	section := "text\n| a | b |\n|---|---|\n| `x` | 1 |\n| `y` | 2 |\n\n| c | d |\n|---|---|\n| `z` | 3 |\n"
	want := [][]string{{"`x`", "1"}, {"`y`", "2"}}
	if diff := cmp.Diff(want, tableRows(section, "| a |")); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestMetricsSection(t *testing.T) {
	got, err := metricsSection("# T\n## Metrics\nbody\n### Sub\nmore\n## Recovery\nnot this\n")
	if err != nil || got != "body\n### Sub\nmore" {
		t.Errorf("section %q, %v", got, err)
	}
	if _, err := metricsSection("# T\n## Other\n"); err == nil {
		t.Error("a README without a Metrics section was accepted")
	}
}
