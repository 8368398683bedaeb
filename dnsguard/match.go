package dnsguard

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/edgeward/edgeward/config"
)

// Rule is one compiled allowlist entry.
type Rule struct {
	Pattern   string             // canonical: lower case, no trailing dot
	Ports     []config.PortRange // what an accepted answer opens
	AnswersIn []netip.Prefix     // nil: refuse private and special ranges instead
	index     int                // position in the allowlist, for per-pattern state
}

// Matcher finds the allowlist entry for a query name.
//
// Grammar: "a.zone" matches itself only; "*.zone" matches names with
// exactly one label before zone; "**.zone" matches names with one or more
// labels before zone. Matching is case-insensitive on whole labels, so
// "evilzone" never matches "zone". When several entries match, the most
// specific wins: the exact name, then the wildcard with the longest zone,
// and "*" before "**" on the same zone.
//
// The zero Matcher matches nothing. A Matcher is read-only after
// NewMatcher and safe for concurrent use.
type Matcher struct {
	rules     []*Rule
	byPattern map[string]*Rule
	exact     map[string]*Rule
	one       map[string]*Rule // zone of "*.zone"
	many      map[string]*Rule // zone of "**.zone"
}

// NewMatcher compiles the allowlist. Patterns may carry a trailing dot and
// any case. It fails on a pattern outside the grammar or listed twice.
func NewMatcher(names []config.Name) (*Matcher, error) {
	m := &Matcher{
		byPattern: map[string]*Rule{},
		exact:     map[string]*Rule{},
		one:       map[string]*Rule{},
		many:      map[string]*Rule{},
	}

	for i, n := range names {
		if err := m.add(i, n); err != nil {
			return nil, fmt.Errorf("dns name %d (%q): %w", i, n.Match, err)
		}
	}
	return m, nil
}

// add compiles one entry into m.
func (m *Matcher) add(i int, n config.Name) error {
	pattern, err := config.CanonicalName(n.Match, true)
	if err != nil {
		return err
	}

	table, key := m.exact, pattern
	if zone, ok := strings.CutPrefix(pattern, "**."); ok {
		table, key = m.many, zone
	} else if zone, ok := strings.CutPrefix(pattern, "*."); ok {
		table, key = m.one, zone
	}
	if _, dup := table[key]; dup {
		return fmt.Errorf("pattern %q is listed twice", pattern)
	}

	r := &Rule{Pattern: pattern, Ports: n.Ports, AnswersIn: n.AnswersIn, index: i}
	table[key] = r
	m.byPattern[pattern] = r
	m.rules = append(m.rules, r)
	return nil
}

// Rules returns the compiled entries in allowlist order. The caller must
// not modify them.
func (m *Matcher) Rules() []*Rule {
	return m.rules
}

// Match returns the entry that allows name, or nil. The name may carry a
// trailing dot and any case. A name holding anything but letters, digits,
// '-', '_' and dots between non-empty labels (for example an escaped dot
// or a byte in \DDD form) matches nothing.
func (m *Matcher) Match(name string) *Rule {
	name, ok := canonicalQuery(name)
	if !ok || m == nil {
		return nil
	}

	if r := m.exact[name]; r != nil {
		return r
	}
	first := true
	for zone, ok := parentOf(name); ok; zone, ok = parentOf(zone) {
		if r := m.one[zone]; first && r != nil {
			return r
		}
		if r := m.many[zone]; r != nil {
			return r
		}
		first = false
	}
	return nil
}

// parentOf returns name without its first label, and false when name has
// a single label.
func parentOf(name string) (string, bool) {
	i := strings.IndexByte(name, '.')
	if i < 0 {
		return "", false
	}
	return name[i+1:], true
}

// canonicalQuery lowers name and drops its trailing dot. It reports false
// for names outside the host-name alphabet, empty labels and the root.
func canonicalQuery(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return "", false
	}

	prev := byte('.')
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '.' && prev == '.' {
			return "", false
		}
		if !hostByte(c) {
			return "", false
		}
		prev = c
	}
	if prev == '.' {
		return "", false
	}
	return strings.ToLower(name), true
}

// hostByte reports whether c may appear in a canonical query name.
func hostByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '_' || c == '.'
}
