package config

import (
	"net/netip"
	"slices"

	"go.yaml.in/yaml/v3"
)

// dns decodes the dns section into d, which holds the defaults.
func (p *parser) dns(n *yaml.Node, d *DNS) {
	o := p.object(n, "dns", "listen", "transparent", "queue", "upstreams", "names", "ttl", "deny_response")
	if o == nil {
		return
	}

	d.Listen = p.listen(o.get("listen"), o.path("listen"))
	if v := o.get("transparent"); v != nil {
		d.Transparent = p.boolean(v, o.path("transparent"))
	}
	p.queue(o.get("queue"), o.path("queue"), &d.Queue)
	zones := map[string]*yaml.Node{}
	d.Upstreams = p.upstreams(o.get("upstreams"), o.path("upstreams"), zones)
	d.Names = p.names(o.get("names"), o.path("names"), zones)
	p.ttl(o.get("ttl"), o.path("ttl"), &d.TTL)
	if v := o.get("deny_response"); v != nil {
		d.DenyResponse = p.enum(v, o.path("deny_response"), "refused", "nxdomain")
	}

	p.guardReachable(o, d)
}

// guardReachable refuses an allowlist that no client can use: names but
// no listen address and no transparent mode.
func (p *parser) guardReachable(o *object, d *DNS) {
	if len(d.Names) == 0 || len(d.Listen) > 0 || d.Transparent {
		return
	}

	p.errorAt(o.get("names"), o.path("names"),
		"names are listed but the guard has nowhere to answer: set dns.listen or dns.transparent: true")
}

// queue decodes the transparent mode's NFQUEUE settings into q, which
// holds the defaults.
func (p *parser) queue(n *yaml.Node, field string, q *Queue) {
	if n == nil {
		return
	}
	o := p.object(n, field, "number", "length")
	if o == nil {
		return
	}

	if v := o.get("number"); v != nil {
		if num, ok := p.integer(v, o.path("number"), 0, 65535); ok {
			q.Number = uint16(num)
		}
	}
	if v := o.get("length"); v != nil {
		if length, ok := p.integer(v, o.path("length"), 1, 1<<20); ok {
			q.Length = uint32(length)
		}
	}
}

// upstreams decodes the upstream list; zones collects every zone with its
// node, and no zone may appear twice.
func (p *parser) upstreams(n *yaml.Node, field string, zones map[string]*yaml.Node) []Upstream {
	var out []Upstream
	for i, item := range p.list(n, field) {
		f := index(field, i)
		o := p.object(item, f, "zones", "servers")
		if o == nil {
			continue
		}

		var u Upstream
		if v := p.require(o, "zones"); v != nil {
			u.Zones = p.zones(v, o.path("zones"), zones)
		}
		if v := p.require(o, "servers"); v != nil {
			u.Servers = p.servers(v, o.path("servers"))
		}
		out = append(out, u)
	}

	return out
}

// zones decodes the zones of one upstream.
func (p *parser) zones(n *yaml.Node, field string, seen map[string]*yaml.Node) []string {
	items := p.list(n, field)
	if len(items) == 0 {
		p.emptyList(n, field, "amazonaws.com")
	}

	var out []string
	for i, item := range items {
		f := index(field, i)
		s, ok := p.str(item, f)
		if !ok {
			continue
		}

		zone, err := CanonicalName(s, false)
		if err != nil {
			p.errorAt(item, f, "zone %q: %v", s, err)
			continue
		}
		if prev, dup := seen[zone]; dup {
			p.errorAt(item, f, "zone %q is already listed at line %d; a zone has one set of servers", zone, prev.Line)
			continue
		}
		seen[zone] = item
		out = append(out, zone)
	}

	return out
}

// servers decodes the servers of one upstream; the port defaults to 53.
func (p *parser) servers(n *yaml.Node, field string) []netip.AddrPort {
	items := p.list(n, field)
	if len(items) == 0 {
		p.emptyList(n, field, "10.20.0.2:53")
	}

	var out []netip.AddrPort
	for i, item := range items {
		f := index(field, i)
		ap, ok := p.endpointAddr(item, f, DefaultDNSPort)
		if !ok {
			continue
		}
		if slices.Contains(out, ap) {
			p.errorAt(item, f, "server %s is listed twice", ap)
			continue
		}
		out = append(out, ap)
	}

	return out
}

// names decodes the allowlist; every entry must fall in an upstream zone.
func (p *parser) names(n *yaml.Node, field string, zones map[string]*yaml.Node) []Name {
	seen := map[string]*yaml.Node{}

	var out []Name
	for i, item := range p.list(n, field) {
		nm, ok := p.name(item, index(field, i), zones, seen)
		if ok {
			out = append(out, nm)
		}
	}

	return out
}

// name decodes one allowlist entry. answers_in is optional: left out (or
// null) it stays nil, and the DNS guard then refuses answers in private,
// loopback, link-local, CGNAT, ULA and LAN ranges instead; written as an
// empty list it is an error, since an empty list would read as "nowhere".
func (p *parser) name(n *yaml.Node, field string, zones, seen map[string]*yaml.Node) (Name, bool) {
	o := p.object(n, field, "match", "ports", "answers_in")
	if o == nil {
		return Name{}, false
	}
	errs := len(p.errs)

	var nm Name
	if v := p.require(o, "match"); v != nil {
		nm.Match = p.match(v, o.path("match"), zones, seen)
	}
	if v := p.require(o, "ports"); v != nil {
		nm.Ports = p.portSet(v, o.path("ports"), true)
	}
	if v := o.get("answers_in"); v != nil {
		nm.AnswersIn = p.prefixes(v, o.path("answers_in"), prefixRules{required: true})
	}

	return nm, len(p.errs) == errs
}

// match decodes the name pattern of an allowlist entry.
func (p *parser) match(n *yaml.Node, field string, zones, seen map[string]*yaml.Node) string {
	s, ok := p.str(n, field)
	if !ok {
		return ""
	}

	m, err := CanonicalName(s, true)
	if err != nil {
		p.errorAt(n, field, "%q: %v", s, err)
		return ""
	}
	if prev, dup := seen[m]; dup {
		p.errorAt(n, field, "%q is already listed at line %d", m, prev.Line)
		return ""
	}
	seen[m] = n

	if !coveredBy(nameZone(m), zones) {
		p.errorAt(n, field, "%q is in no upstream zone, so the guard could not resolve it; "+
			"add its zone to dns.upstreams", m)
		return ""
	}
	return m
}

// coveredBy reports whether name lies in one of zones.
func coveredBy(name string, zones map[string]*yaml.Node) bool {
	for z := range zones {
		if inZone(name, z) {
			return true
		}
	}
	return false
}

// ttl decodes the floor and ceiling of learned lifetimes into t, which
// holds the defaults.
func (p *parser) ttl(n *yaml.Node, field string, t *TTL) {
	o := p.object(n, field, "min", "max")
	if o == nil {
		return
	}

	okMin, okMax := true, true
	if v := o.get("min"); v != nil {
		t.Min, okMin = p.duration(v, o.path("min"))
	}
	if v := o.get("max"); v != nil {
		t.Max, okMax = p.duration(v, o.path("max"))
	}

	if !okMin || !okMax || t.Min <= t.Max {
		return
	}
	if v := o.get("min"); v != nil {
		p.errorAt(v, o.path("min"), "min %s is greater than max %s", t.Min, t.Max)
		return
	}
	p.errorAt(o.get("max"), o.path("max"), "max %s is less than the default min %s", t.Max, t.Min)
}
