package config

import (
	"errors"
	"fmt"
	"path"

	"go.yaml.in/yaml/v3"
)

// Role is what the data plane does with an interface.
type Role int

// Roles of interfaces. The zero value is RoleUplink: an interface nothing
// names is enforced.
const (
	RoleUplink   Role = iota // enforced: egress only to endpoints, proxy, learned destinations
	RoleVPN                  // traffic into it is the tunnel's business
	RoleLAN                  // faces the OT network
	RoleIgnore               // never touched
	RoleLoopback             // lo
)

// String returns "uplink", "vpn", "lan", "ignore", "loopback", or
// "role(N)" for other values.
func (r Role) String() string {
	switch r {
	case RoleUplink:
		return "uplink"
	case RoleVPN:
		return "vpn"
	case RoleLAN:
		return "lan"
	case RoleIgnore:
		return "ignore"
	case RoleLoopback:
		return "loopback"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Classify returns the role of the interface called ifname: loopback for
// "lo", else the role whose pattern (path.Match) matches, else uplink.
// Parse guarantees that no name matches patterns of two roles; on a Config
// built by hand, vpn wins over lan over ignore. A nil Config classifies
// every interface but lo as an uplink.
func (c *Config) Classify(ifname string) Role {
	if ifname == "lo" {
		return RoleLoopback
	}
	if c == nil {
		return RoleUplink
	}

	roles := []struct {
		patterns []string
		role     Role
	}{
		{c.Interfaces.VPN, RoleVPN},
		{c.Interfaces.LAN, RoleLAN},
		{c.Interfaces.Ignore, RoleIgnore},
	}
	for _, r := range roles {
		if matchAny(r.patterns, ifname) {
			return r.role
		}
	}
	return RoleUplink
}

// matchAny reports whether name matches one of patterns; a malformed
// pattern matches nothing.
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, name); ok && err == nil {
			return true
		}
	}
	return false
}

// checkPattern compiles an interface pattern and refuses the ones that
// cannot be meant: empty, malformed, "lo", matching no name, or matching
// every name (which would leave nothing enforced).
func checkPattern(s string) (glob, error) {
	if s == "" {
		return glob{}, errors.New("empty pattern")
	}
	g, err := parseGlob(s)
	if err != nil {
		return glob{}, fmt.Errorf("invalid pattern %q: %w", s, err)
	}

	if name, ok := g.literalName(); ok && name == "lo" {
		return glob{}, errors.New(`"lo" is always the loopback interface and cannot be given a role`)
	}
	if g.minLen() > maxIfName {
		return glob{}, fmt.Errorf("pattern %q needs at least %d characters; interface names have at most %d",
			s, g.minLen(), maxIfName)
	}
	if _, ok := intersect(g, g); !ok {
		return glob{}, fmt.Errorf("pattern %q matches no interface name", s)
	}
	if _, all := g.matchesAll(); all {
		return glob{}, fmt.Errorf("pattern %q matches every interface, so nothing would be enforced; "+
			"name the interfaces", s)
	}

	return g, nil
}

// rolePattern is a checked pattern with where it was written.
type rolePattern struct {
	field string
	role  string
	g     glob
	node  *yaml.Node
}

// interfaces decodes the interfaces section.
func (p *parser) interfaces(n *yaml.Node, ifs *Interfaces) {
	o := p.object(n, "interfaces", "vpn", "lan", "ignore", "lan_services")
	if o == nil {
		return
	}

	var seen []rolePattern
	ifs.VPN = p.patterns(o, "vpn", &seen)
	ifs.LAN = p.patterns(o, "lan", &seen)
	ifs.Ignore = p.patterns(o, "ignore", &seen)
	ifs.LANServices = p.portSet(o.get("lan_services"), o.path("lan_services"), false)
}

// patterns decodes the pattern list of one role, checking each against the
// patterns seen so far.
func (p *parser) patterns(o *object, role string, seen *[]rolePattern) []string {
	field := o.path(role)

	var out []string
	for i, item := range p.list(o.get(role), field) {
		f := index(field, i)
		s, ok := p.str(item, f)
		if !ok {
			continue
		}

		g, err := checkPattern(s)
		if err != nil {
			p.errorAt(item, f, "%v", err)
			continue
		}
		cur := rolePattern{field: f, role: role, g: g, node: item}
		if p.patternClash(cur, *seen) {
			continue
		}
		*seen = append(*seen, cur)
		out = append(out, s)
	}

	return out
}

// patternClash reports cur when it repeats a pattern seen before or
// overlaps one of another role, and returns whether it did.
func (p *parser) patternClash(cur rolePattern, seen []rolePattern) bool {
	for _, prev := range seen {
		if prev.g.text == cur.g.text {
			p.errorAt(cur.node, cur.field, "pattern %q is already listed at %s (line %d)",
				cur.g.text, prev.field, prev.node.Line)
			return true
		}
		if prev.role == cur.role {
			continue
		}

		if name, ok := intersect(prev.g, cur.g); ok {
			p.errorAt(cur.node, cur.field,
				"%s pattern %q overlaps %s pattern %q (%s, line %d): both match %q; an interface has one role",
				cur.role, cur.g.text, prev.role, prev.g.text, prev.field, prev.node.Line, name)
			return true
		}
	}

	return false
}
