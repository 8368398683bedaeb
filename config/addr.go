package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParsePrefix parses a CIDR or a bare address (a /32 or /128).
//
// It refuses host bits set (and names the network meant), IPv6 zones, and
// IPv4-mapped IPv6 forms, which would never match: the data plane sees
// IPv4 packets as IPv4.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := parseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}

	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.20.8.0/24 or 2001:db8::/64", s)
	}
	if pfx.Addr().Is4In6() {
		return netip.Prefix{}, mappedPrefix(pfx)
	}
	if m := pfx.Masked(); m != pfx {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", s, m)
	}

	return pfx, nil
}

// mappedPrefix explains how to write an IPv4-mapped IPv6 prefix.
func mappedPrefix(pfx netip.Prefix) error {
	if pfx.Bits() < 96 {
		return fmt.Errorf("%s mixes IPv4-mapped and plain IPv6 space; "+
			"list the IPv4 and IPv6 ranges separately", pfx)
	}

	v4 := netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96).Masked()
	return fmt.Errorf("%s is an IPv4-mapped IPv6 prefix; write the IPv4 form %s", pfx, v4)
}

// parseAddr parses a plain IP address without a zone, refusing
// IPv4-mapped IPv6.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: IPv6 zones (%%%s) are not allowed here", s, a.Zone())
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%s is an IPv4-mapped IPv6 address; write the IPv4 form %s", s, a.Unmap())
	}

	return a, nil
}

// ParseAddrPort parses "ip:port" ("[v6]:port" for IPv6). When defPort is
// not zero the port may be left out ("10.0.0.2", "2001:db8::2" or
// "[2001:db8::2]") and defPort is used. Port 0 is refused, and so are
// IPv4-mapped IPv6 addresses.
func ParseAddrPort(s string, defPort uint16) (netip.AddrPort, error) {
	if defPort != 0 {
		if a, ok := bareAddr(s); ok {
			return checkAddrPort(s, netip.AddrPortFrom(a, defPort))
		}
	}

	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, addrPortSyntax(s, defPort)
	}
	return checkAddrPort(s, ap)
}

// bareAddr parses an address without a port: "10.0.0.2", "2001:db8::2"
// or "[2001:db8::2]".
func bareAddr(s string) (netip.Addr, bool) {
	inner, bracketed := strings.CutPrefix(s, "[")
	if bracketed {
		var closed bool
		if inner, closed = strings.CutSuffix(inner, "]"); !closed {
			return netip.Addr{}, false
		}
	}

	a, err := netip.ParseAddr(inner)
	if err != nil || (bracketed && !a.Is6()) {
		return netip.Addr{}, false
	}
	return a, true
}

// addrPortSyntax explains the ip:port grammar.
func addrPortSyntax(s string, defPort uint16) error {
	if defPort != 0 {
		return fmt.Errorf("%q is not an address with an optional port, e.g. 10.20.0.2:53 or [2001:db8::2]:53", s)
	}
	return fmt.Errorf("%q is not ip:port, e.g. 127.0.0.1:53 or [2001:db8::1]:53", s)
}

// checkAddrPort refuses port 0 and IPv4-mapped addresses.
func checkAddrPort(s string, ap netip.AddrPort) (netip.AddrPort, error) {
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q: port must be 1-65535, not 0", s)
	}
	if ap.Addr().Is4In6() {
		return netip.AddrPort{}, fmt.Errorf("%s is an IPv4-mapped IPv6 address; write the IPv4 form %s",
			s, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}

	return ap, nil
}

// prefixRules says what a list of CIDRs must hold.
type prefixRules struct {
	required  bool // at least one entry
	noDefault bool // refuse 0.0.0.0/0 and ::/0
}

// prefixes decodes a list of CIDRs with no duplicates and no entry inside
// another.
func (p *parser) prefixes(n *yaml.Node, field string, rules prefixRules) []netip.Prefix {
	kind := disjointKind[netip.Prefix]{
		example:  "10.20.8.0/24",
		parse:    ParsePrefix,
		overlaps: netip.Prefix.Overlaps,
		advice:   "keep the larger one",
	}
	if rules.noDefault {
		kind.check = refuseDefaultRoute
	}
	return disjointList(p, n, field, rules.required, kind)
}

// refuseDefaultRoute refuses a prefix that covers every address.
func refuseDefaultRoute(pfx netip.Prefix) error {
	if pfx.Bits() == 0 {
		return fmt.Errorf("%s would open these ports to every address; list the endpoint's own ranges", pfx)
	}
	return nil
}

// listen decodes a list of ip:port addresses to listen on; each may be
// claimed by one field only.
func (p *parser) listen(n *yaml.Node, field string) []netip.AddrPort {
	var out []netip.AddrPort
	for i, item := range p.list(n, field) {
		f := index(field, i)
		s, ok := p.str(item, f)
		if !ok {
			continue
		}

		ap, err := ParseAddrPort(s, 0)
		if err != nil {
			p.errorAt(item, f, "%v", err)
			continue
		}
		if p.claimListen(item, f, ap) {
			out = append(out, ap)
		}
	}

	return out
}

// claimListen records that field listens on ap, and reports false after
// recording an error when another field already does.
func (p *parser) claimListen(n *yaml.Node, field string, ap netip.AddrPort) bool {
	if p.listeners == nil {
		p.listeners = map[netip.AddrPort]claim{}
	}

	if c, ok := p.listeners[ap]; ok {
		p.errorAt(n, field, "%s is already used by %s (line %d)", ap, c.field, c.line)
		return false
	}
	p.listeners[ap] = claim{field: field, line: n.Line}
	return true
}

// portNumber parses the decimal port of a host:port, 1..65535.
func portNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q must be a number 1-65535", s)
	}
	return uint16(n), nil
}
