package config

import (
	"fmt"
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// maxEndpointName bounds endpoint names, which appear in logs and in the
// output of edgeward explain.
const maxEndpointName = 63

// endpoints decodes the endpoints list; names are unique.
func (p *parser) endpoints(n *yaml.Node) []Endpoint {
	names := map[string]*yaml.Node{}

	var out []Endpoint
	for i, item := range p.list(n, "endpoints") {
		e, ok := p.endpoint(item, index("endpoints", i), names)
		if ok {
			out = append(out, e)
		}
	}

	return out
}

// endpoint decodes one endpoint; names holds the names seen so far.
func (p *parser) endpoint(n *yaml.Node, field string, names map[string]*yaml.Node) (Endpoint, bool) {
	o := p.object(n, field, "name", "to", "ports")
	if o == nil {
		return Endpoint{}, false
	}
	errs := len(p.errs)

	var e Endpoint
	if v := p.require(o, "name"); v != nil {
		e.Name = p.endpointName(v, o.path("name"), names)
	}
	if v := p.require(o, "to"); v != nil {
		e.To = p.prefixes(v, o.path("to"), prefixRules{required: true, noDefault: true})
	}
	if v := p.require(o, "ports"); v != nil {
		e.Ports = p.portSet(v, o.path("ports"), true)
	}

	return e, len(p.errs) == errs
}

// endpointName checks an endpoint name: unique, 1-63 letters, digits,
// '-', '_' or '.'.
func (p *parser) endpointName(n *yaml.Node, field string, names map[string]*yaml.Node) string {
	s, ok := p.nonEmpty(n, field)
	if !ok {
		return ""
	}
	if err := checkEndpointName(s); err != nil {
		p.errorAt(n, field, "%v", err)
		return ""
	}

	if prev, dup := names[s]; dup {
		p.errorAt(n, field, "endpoint name %q is used twice: at line %d and line %d", s, prev.Line, n.Line)
		return ""
	}
	names[s] = n
	return s
}

// checkEndpointName checks the characters and length of an endpoint name.
func checkEndpointName(s string) error {
	if len(s) > maxEndpointName {
		return fmt.Errorf("name is %d characters long; at most %d", len(s), maxEndpointName)
	}
	for _, c := range []byte(s) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("name %q may hold only letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}

// proxy decodes the proxy section; nil when absent.
func (p *parser) proxy(n *yaml.Node) *Proxy {
	if n == nil || isNull(n) {
		return nil
	}
	o := p.object(n, "proxy", "address")
	if o == nil {
		return nil
	}

	v := p.require(o, "address")
	if v == nil {
		return nil
	}
	ap, ok := p.endpointAddr(v, o.path("address"), 0)
	if !ok {
		return nil
	}

	return &Proxy{Address: ap}
}

// endpointAddr decodes an ip:port the gateway connects to: the address
// must be a real host, not 0.0.0.0 or ::, nor a multicast group.
func (p *parser) endpointAddr(n *yaml.Node, field string, defPort uint16) (netip.AddrPort, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return netip.AddrPort{}, false
	}

	ap, err := ParseAddrPort(s, defPort)
	if err != nil {
		p.errorAt(n, field, "%v", err)
		return netip.AddrPort{}, false
	}
	if a := ap.Addr(); a.IsUnspecified() || a.IsMulticast() {
		p.errorAt(n, field, "%s is not a host address", a)
		return netip.AddrPort{}, false
	}

	return ap, true
}
