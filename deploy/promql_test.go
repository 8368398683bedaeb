package deploy

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// selector is a metric name in a PromQL expression with the label
// matchers written next to it.
type selector struct {
	Metric   string
	Matchers []matcher
}

// matcher is one label matcher, such as verdict=~"drop|audit".
type matcher struct {
	Label, Op, Value string
}

// promqlWords are PromQL's keywords, binary operators written as words and
// aggregation operators: an identifier among them that is not followed by
// "(" is not a metric name (sum by (x) (...), a and b, x > bool 1).
var promqlWords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"atan2": true, "inf": true, "nan": true, "start": true, "end": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true,
	"stddev": true, "stdvar": true, "count": true, "count_values": true,
	"bottomk": true, "topk": true, "quantile": true, "limitk": true,
	"limit_ratio": true,
}

// groupingWords take a parenthesised list of label names, which are not
// metric names: by (hook), without (stream), on (instance), group_left ().
var groupingWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true,
}

// scanner walks a PromQL expression byte by byte.
type scanner struct {
	s string
	i int
}

// selectors returns the metric selectors of expr in order. It skips
// string literals, range and subquery brackets, Grafana variables ($x,
// ${x}), numbers, durations, function and aggregation names, keywords and
// the label lists of by, without, on, ignoring, group_left and
// group_right. A selector written only as {__name__="x"} counts as x. It
// fails on an unterminated string, bracket or label matcher list.
func selectors(expr string) ([]selector, error) {
	sc := &scanner{s: expr}
	var out []selector
	for sc.i < len(sc.s) {
		sel, ok, err := sc.next()
		if err != nil {
			return nil, fmt.Errorf("%q at %d: %w", expr, sc.i, err)
		}
		if ok {
			out = append(out, sel)
		}
	}
	return out, nil
}

// next consumes one token and returns a selector when the token is one.
func (sc *scanner) next() (selector, bool, error) {
	c := sc.s[sc.i]
	switch {
	case c == '"' || c == '\'' || c == '`':
		_, err := sc.quoted()
		return selector{}, false, err
	case c == '[':
		return selector{}, false, sc.skipPast('[', ']')
	case c == '#':
		sc.skipComment()
	case c == '$':
		return selector{}, false, sc.skipVariable()
	case c == '{':
		return sc.nameless()
	case isDigit(c) || (c == '.' && sc.i+1 < len(sc.s) && isDigit(sc.s[sc.i+1])):
		sc.skipWhile(func(b byte) bool { return isIdentByte(b) || b == '.' })
	case isIdentStart(c):
		return sc.identifier()
	default:
		sc.i++
	}
	return selector{}, false, nil
}

// identifier reads a name and decides whether it is a metric.
func (sc *scanner) identifier() (selector, bool, error) {
	start := sc.i
	sc.skipWhile(isIdentByte)
	name := sc.s[start:sc.i]
	follows := sc.peek()

	switch {
	case groupingWords[name]:
		if follows == '(' {
			sc.skipSpace()
			return selector{}, false, sc.skipPast('(', ')')
		}
		return selector{}, false, nil
	case follows == '(' || promqlWords[strings.ToLower(name)]:
		return selector{}, false, nil
	}

	sel := selector{Metric: name}
	if follows == '{' {
		sc.skipSpace()
		ms, err := sc.matchers()
		if err != nil {
			return selector{}, false, err
		}
		sel.Matchers = ms
	}
	return sel, true, nil
}

// nameless reads {...} without a metric name before it; only a
// __name__="x" matcher makes it a selector of x.
func (sc *scanner) nameless() (selector, bool, error) {
	ms, err := sc.matchers()
	if err != nil {
		return selector{}, false, err
	}
	var sel selector
	for _, m := range ms {
		if m.Label == "__name__" && m.Op == "=" {
			sel.Metric = m.Value
		} else {
			sel.Matchers = append(sel.Matchers, m)
		}
	}
	return sel, sel.Metric != "", nil
}

// matchers reads {label op "value", ...}; sc is at the "{".
func (sc *scanner) matchers() ([]matcher, error) {
	sc.i++ // {
	var out []matcher
	for {
		sc.skipWhile(func(b byte) bool { return isSpace(b) || b == ',' })
		if sc.i >= len(sc.s) {
			return nil, fmt.Errorf("unterminated label matchers")
		}
		if sc.s[sc.i] == '}' {
			sc.i++
			return out, nil
		}
		m, err := sc.matcher()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
}

// matcher reads one label op "value" (or 'value', or `value`).
func (sc *scanner) matcher() (matcher, error) {
	start := sc.i
	sc.skipWhile(isIdentByte)
	m := matcher{Label: sc.s[start:sc.i]}
	if m.Label == "" || !isIdentStart(m.Label[0]) {
		return m, fmt.Errorf("label name expected")
	}
	sc.skipSpace()
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if strings.HasPrefix(sc.s[sc.i:], op) {
			m.Op = op
			break
		}
	}
	if m.Op == "" {
		return m, fmt.Errorf("matcher operator expected after %s", m.Label)
	}
	sc.i += len(m.Op)
	sc.skipSpace()
	if sc.i >= len(sc.s) || !strings.ContainsRune("\"'`", rune(sc.s[sc.i])) {
		return m, fmt.Errorf("quoted value expected for %s", m.Label)
	}
	v, err := sc.quoted()
	m.Value = v
	return m, err
}

// quoted reads a string literal and returns its value.
func (sc *scanner) quoted() (string, error) {
	q := sc.s[sc.i]
	for j := sc.i + 1; j < len(sc.s); j++ {
		switch {
		case sc.s[j] == '\\' && q != '`':
			j++
		case sc.s[j] == q:
			lit := sc.s[sc.i : j+1]
			sc.i = j + 1
			if q == '\'' { // a PromQL string, not a Go rune
				lit = `"` + strings.ReplaceAll(lit[1:len(lit)-1], `"`, `\"`) + `"`
			}
			return strconv.Unquote(lit)
		}
	}
	return "", fmt.Errorf("unterminated string")
}

// skipPast skips a bracketed group that may nest; sc is at open.
func (sc *scanner) skipPast(open, close byte) error {
	depth := 0
	for ; sc.i < len(sc.s); sc.i++ {
		switch sc.s[sc.i] {
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				sc.i++
				return nil
			}
		}
	}
	return fmt.Errorf("unterminated %c", open)
}

// skipVariable skips $name, ${name} and ${name:format}.
func (sc *scanner) skipVariable() error {
	sc.i++
	if sc.i < len(sc.s) && sc.s[sc.i] == '{' {
		return sc.skipPast('{', '}')
	}
	sc.skipWhile(isIdentByte)
	return nil
}

func (sc *scanner) skipComment() {
	sc.skipWhile(func(b byte) bool { return b != '\n' })
}

func (sc *scanner) skipSpace() { sc.skipWhile(isSpace) }

func (sc *scanner) skipWhile(ok func(byte) bool) {
	for sc.i < len(sc.s) && ok(sc.s[sc.i]) {
		sc.i++
	}
}

// peek returns the next byte after spaces without consuming it, 0 at the
// end.
func (sc *scanner) peek() byte {
	for j := sc.i; j < len(sc.s); j++ {
		if !isSpace(sc.s[j]) {
			return sc.s[j]
		}
	}
	return 0
}

func isSpace(b byte) bool      { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }
func isDigit(b byte) bool      { return b >= '0' && b <= '9' }
func isIdentStart(b byte) bool { return b == '_' || b == ':' || (b|0x20 >= 'a' && b|0x20 <= 'z') }
func isIdentByte(b byte) bool  { return isIdentStart(b) || isDigit(b) }

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []selector
	}{
		{`sum by (hook, reason) (rate(edgeward_packets_total{verdict="drop"}[5m]))`,
			[]selector{{"edgeward_packets_total", []matcher{{"verdict", "=", "drop"}}}}},
		{`sum(rate(x[5m])) by (reason) > bool 0`, []selector{{Metric: "x"}}},
		{`a / ignoring (family) group_left b > 0.9`, []selector{{Metric: "a"}, {Metric: "b"}}},
		{`a and on (instance, job) b unless c offset 1h`, []selector{{Metric: "a"}, {Metric: "b"}, {Metric: "c"}}},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket{instance=~"$instance"}[$__rate_interval])))`,
			[]selector{{"h_bucket", []matcher{{"instance", "=~", "$instance"}}}}},
		{`up{job=~".*edgeward.*"} == 0`, []selector{{"up", []matcher{{"job", "=~", ".*edgeward.*"}}}}},
		{`absent(edgeward_build_info)`, []selector{{Metric: "edgeward_build_info"}}},
		{`count without (stream) (x{reason="a,b}\"c"} @ start())`,
			[]selector{{"x", []matcher{{"reason", "=", `a,b}"c`}}}}},
		{`max_over_time(x{role="vpn"}[1d:5m]) * 1e3 + .5 - 2h`, []selector{{"x", []matcher{{"role", "=", "vpn"}}}}},
		{`{__name__="x", a!~'b|c'}`, []selector{{"x", []matcher{{"a", "!~", "b|c"}}}}},
		{`{a="b"}`, nil},
		{"topk(3, x) # a comment naming y\n+ z", []selector{{Metric: "x"}, {Metric: "z"}}},
		{`label_replace(x, "dst", "$1", "src", "(.*)")`, []selector{{Metric: "x"}}},
		{`vector(1)`, nil},
		{`rate(${metric}[5m]) + recording:rule_5m`, []selector{{Metric: "recording:rule_5m"}}},
	} {
		got, err := selectors(tc.expr)
		if err != nil {
			t.Errorf("selectors(%q): %v", tc.expr, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("selectors(%q) (-want +got):\n%s", tc.expr, diff)
		}
	}
}

func TestSelectorsRejectsBrokenExpressions(t *testing.T) {
	for _, expr := range []string{
		`x{a="b"`,
		`x{a=b}`,
		`x{a}`,
		`x{a="b}`,
		`rate(x[5m)`,
		`x{="b"}`,
		`"open`,
	} {
		if got, err := selectors(expr); err == nil {
			t.Errorf("selectors(%q) = %v, want an error", expr, got)
		}
	}
}
