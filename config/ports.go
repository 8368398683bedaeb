package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Proto is an IP protocol number that port sets can name.
type Proto uint8

// Protocols a port set can name.
const (
	ProtoTCP Proto = 6
	ProtoUDP Proto = 17
)

// String returns "tcp", "udp", or "proto(N)" for other numbers.
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// PortRange is a protocol and an inclusive range of ports, First <= Last.
type PortRange struct {
	Proto       Proto
	First, Last uint16
}

// String returns the config form: "tcp/443" or "tcp/8000-8100".
func (r PortRange) String() string {
	s := r.Proto.String() + "/" + strconv.Itoa(int(r.First))
	if r.Last != r.First {
		s += "-" + strconv.Itoa(int(r.Last))
	}
	return s
}

// Contains reports whether proto and port fall in r.
func (r PortRange) Contains(proto Proto, port uint16) bool {
	return proto == r.Proto && r.First <= port && port <= r.Last
}

// overlaps reports whether r and o share a protocol and a port.
func (r PortRange) overlaps(o PortRange) bool {
	return r.Proto == o.Proto && r.First <= o.Last && o.First <= r.Last
}

// errPortSyntax is the grammar reminder shared by port set errors.
var errPortSyntax = errors.New("want proto/port or proto/first-last, e.g. tcp/443 or udp/8000-8100")

// ParsePortRange parses a port set entry: "tcp/443", "udp/51820" or
// "tcp/8000-8100". The protocol is tcp or udp in any letter case; ports are
// decimal 1..65535 and first <= last. No spaces are allowed.
func ParsePortRange(s string) (PortRange, error) {
	protoText, ports, ok := strings.Cut(s, "/")
	if !ok || protoText == "" || ports == "" {
		return PortRange{}, fmt.Errorf("%q: %w", s, errPortSyntax)
	}

	var r PortRange
	switch strings.ToLower(protoText) {
	case "tcp":
		r.Proto = ProtoTCP
	case "udp":
		r.Proto = ProtoUDP
	default:
		return PortRange{}, fmt.Errorf("%q: unknown protocol %q (want tcp or udp)", s, protoText)
	}

	first, last, isRange := strings.Cut(ports, "-")
	var err error
	if r.First, err = parsePort(first); err != nil {
		return PortRange{}, fmt.Errorf("%q: %w", s, err)
	}
	r.Last = r.First
	if isRange {
		if r.Last, err = parsePort(last); err != nil {
			return PortRange{}, fmt.Errorf("%q: %w", s, err)
		}
	}

	if r.First > r.Last {
		return PortRange{}, fmt.Errorf("%q: range is reversed (first %d > last %d); write %s/%d-%d",
			s, r.First, r.Last, r.Proto, r.Last, r.First)
	}
	return r, nil
}

// parsePort parses one decimal port 1..65535.
func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q is not a number: %w", s, errPortSyntax)
	}

	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return uint16(n), nil
}

// portSet decodes a list of port ranges; no two entries may share a port.
// required says whether an empty list is an error.
func (p *parser) portSet(n *yaml.Node, field string, required bool) []PortRange {
	return disjointList(p, n, field, required, disjointKind[PortRange]{
		example:  "tcp/443",
		parse:    ParsePortRange,
		overlaps: PortRange.overlaps,
		noun:     "port set ",
		advice:   "merge them",
	})
}

// emptyList records that a required list is missing or empty; example is
// a sample item for the message.
func (p *parser) emptyList(n *yaml.Node, field, example string) {
	if n == nil || n.Kind != yaml.SequenceNode {
		return // a missing key or a wrong type is reported elsewhere
	}

	p.errorAt(n, field, "must list at least one entry, e.g. [%s]", example)
}
