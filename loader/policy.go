package loader

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/edgeward/edgeward/config"
)

// Limits of one policy: MaxPortRanges and MaxPrefixLens are
// EW_MAX_RANGES and EW_MAX_PREFIX_LENS of bpf/maps.h.
const (
	// MaxRules is the most entries a policy may have per address family
	// (the tables take a bucket per entry, rounded up to a power of two).
	MaxRules = 262144
	// MaxEndpoints is the most endpoints a policy may name: their indices
	// must stay below serviceEndpoint and proxyEndpoint.
	MaxEndpoints    = serviceEndpoint
	MaxPortRanges   = 16
	MaxPrefixLens   = 40
	proxyEndpoint   = 0xffff
	serviceEndpoint = 0xfffe
	familyIPv4      = 4
	familyIPv6      = 6
)

// GuardMark and GuardMask are EW_GUARD_MARK and EW_GUARD_MASK of
// bpf/maps.h: with transparent DNS, DNS to port 53 leaves an uplink only
// when its packet mark, under the mask, is GuardMark. The DNS guard's
// sockets carry it, and its queue sets it on what it lets through.
const (
	GuardMark uint32 = 0x4577
	GuardMask uint32 = 0xffff
)

// ErrPolicyTooLarge is returned when a policy does not fit the data plane's
// maps. Nothing in the kernel changes when it is returned.
var ErrPolicyTooLarge = errors.New("policy too large")

// Policy is a compiled policy: its settings and tables, ready to be
// written. Build it with Compile.
type Policy struct {
	Generation uint32
	Mode       config.Mode
	// Endpoints names the endpoints by the index the kernel reports.
	Endpoints []string

	settings edgewardEwSettings
	// entries are the prefixes of each family (indexed like
	// settings.Family: familyIndex), tables the tables that hold them,
	// rulesets the port ranges they grant.
	entries  [numFamilies][]tableEntry
	tables   [numFamilies][]edgewardEwBucket
	rulesets []edgewardEwRule
}

// Family indices of bpf/maps.h (enum ew_family_index).
const (
	indexIPv4   = int(edgewardEwFamilyIndexEW_FAMILY_IPV4)
	indexIPv6   = int(edgewardEwFamilyIndexEW_FAMILY_IPV6)
	numFamilies = int(edgewardEwFamilyIndexEW_FAMILIES)
)

// familyNames name the families by index.
var familyNames = [numFamilies]string{indexIPv4: "IPv4", indexIPv6: "IPv6"}

// familyIndex is the index of a prefix's family.
func familyIndex(p netip.Prefix) int {
	if p.Addr().Is4() {
		return indexIPv4
	}
	return indexIPv6
}

// Entries returns the number of prefixes the policy holds.
func (p *Policy) Entries() int {
	return len(p.entries[indexIPv4]) + len(p.entries[indexIPv6])
}

// grant is one port range an endpoint grants on a prefix.
type grant = edgewardEwPortRange

// Compile turns the endpoints and the proxy of cfg into the policy's
// tables.
//
// Each configured prefix becomes one entry whose port ranges are those of
// every configured prefix containing it, so that the program's
// longest-prefix match alone decides. It fails with ErrPolicyTooLarge when
// an entry would need more than MaxPortRanges ranges, an address family
// more than MaxPrefixLens distinct prefix lengths, the policy more than
// MaxRules entries per family or more than MaxEndpoints endpoints, and
// when none of the hashes it tries fits a family's prefixes into their
// table (buildLayout).
func Compile(cfg *config.Config, generation uint32) (*Policy, error) {
	if len(cfg.Endpoints) > MaxEndpoints {
		return nil, fmt.Errorf("%w: %d endpoints, at most %d (the kernel names an endpoint by a 16-bit index)",
			ErrPolicyTooLarge, len(cfg.Endpoints), MaxEndpoints)
	}
	grants := collectGrants(cfg)

	p := &Policy{Generation: generation, Mode: cfg.Mode}
	for _, ep := range cfg.Endpoints {
		p.Endpoints = append(p.Endpoints, ep.Name)
	}

	p.settings = edgewardEwSettings{Generation: generation}
	if len(cfg.DNS.Names) > 0 {
		// Without names no address is learned; with them removed, what was
		// learned for them stops counting.
		p.settings.Learning = 1
	}
	if cfg.Mode == config.ModeAudit {
		p.settings.Mode = 1
	}
	if cfg.DNS.Transparent {
		// DNS leaves only as the guard's or its queue's: see GuardMark.
		p.settings.DnsGate = 1
	}
	lens, err := prefixLengths(grants)
	if err != nil {
		return nil, err
	}
	for i, fam := range lens {
		setLengths(&p.settings.Family[i], fam, i == indexIPv4)
	}

	services := dedupGrants(serviceGrants(cfg))
	if len(services) > MaxPortRanges {
		return nil, fmt.Errorf("%w: the gateway offers LAN hosts %d port ranges (DNS, spool, lan_services), at most %d",
			ErrPolicyTooLarge, len(services), MaxPortRanges)
	}
	p.settings.Nservices = uint8(copy(p.settings.Services[:], services))

	if err := p.addPrefixes(grants, lens); err != nil {
		return nil, err
	}
	if err := p.buildTables(); err != nil {
		return nil, err
	}
	return p, nil
}

// setLengths records a family's prefix lengths, longest first, and their
// masks.
func setLengths(f *edgewardEwFamilyPolicy, lens []uint8, is4 bool) {
	f.Nlens = uint8(copy(f.Lens[:], lens))
	for i, bits := range lens {
		hi, lo := prefixMask(bits, is4)
		f.Masks[i] = [2]uint64{hi, lo}
	}
}

// addPrefixes turns each configured prefix into a table entry with the
// ranges of every prefix that contains it, numbering distinct rulesets.
func (p *Policy) addPrefixes(grants map[netip.Prefix][]grant, lens [numFamilies][]uint8) error {
	var rulesets rulesetIndex
	for _, prefix := range sortedPrefixes(grants) {
		rule, err := ruleFor(prefix, grants, lens[familyIndex(prefix)])
		if err != nil {
			return err
		}
		ruleset, err := rulesets.of(rule)
		if err != nil {
			return err
		}
		i := familyIndex(prefix)
		p.entries[i] = append(p.entries[i], newTableEntry(prefix, ruleset, rule))
	}
	if n4, n6 := len(p.entries[indexIPv4]), len(p.entries[indexIPv6]); n4 > MaxRules || n6 > MaxRules {
		return fmt.Errorf("%w: %d IPv4 and %d IPv6 prefixes, at most %d each", ErrPolicyTooLarge, n4, n6, MaxRules)
	}
	p.rulesets = rulesets.list
	return nil
}

// collectGrants lists, per configured prefix, the port ranges granted on it.
func collectGrants(cfg *config.Config) map[netip.Prefix][]grant {
	grants := make(map[netip.Prefix][]grant)
	for i, ep := range cfg.Endpoints {
		for _, to := range ep.To {
			to = to.Masked()
			for _, pr := range ep.Ports {
				grants[to] = append(grants[to], grant{
					First: pr.First, Last: pr.Last,
					Proto: uint8(pr.Proto), Endpoint: uint16(i),
				})
			}
		}
	}

	for prefix, list := range grants {
		grants[prefix] = dedupGrants(list)
	}

	if cfg.Proxy != nil {
		addr := cfg.Proxy.Address.Addr().Unmap()
		to := netip.PrefixFrom(addr, addr.BitLen())
		port := cfg.Proxy.Address.Port()
		grants[to] = append(grants[to], grant{
			First: port, Last: port,
			Proto: uint8(config.ProtoTCP), Endpoint: proxyEndpoint,
		})
	}
	return grants
}

// serviceGrants lists the gateway's own services that LAN hosts may reach:
// the DNS guard (UDP and TCP), the spool API (TCP) and lan_services.
func serviceGrants(cfg *config.Config) []grant {
	var out []grant
	port := func(proto config.Proto, p uint16) grant {
		return grant{Proto: uint8(proto), First: p, Last: p, Endpoint: serviceEndpoint}
	}
	for _, ap := range cfg.DNS.Listen {
		out = append(out, port(config.ProtoUDP, ap.Port()), port(config.ProtoTCP, ap.Port()))
	}
	for _, ap := range cfg.Spool.Listen {
		out = append(out, port(config.ProtoTCP, ap.Port()))
	}
	for _, pr := range cfg.Interfaces.LANServices {
		out = append(out, grant{Proto: uint8(pr.Proto), First: pr.First, Last: pr.Last, Endpoint: serviceEndpoint})
	}
	return out
}

// prefixLengths returns the distinct prefix lengths per family (indexed
// by familyIndex), longest first.
func prefixLengths(grants map[netip.Prefix][]grant) ([numFamilies][]uint8, error) {
	var seen [numFamilies]map[uint8]bool
	for i := range seen {
		seen[i] = map[uint8]bool{}
	}
	for prefix := range grants {
		seen[familyIndex(prefix)][uint8(prefix.Bits())] = true
	}

	var out [numFamilies][]uint8
	for i, set := range seen {
		lens := slices.Collect(maps.Keys(set))
		slices.SortFunc(lens, func(a, b uint8) int { return cmp.Compare(b, a) })
		if len(lens) > MaxPrefixLens {
			return out, fmt.Errorf("%w: %s prefixes use %d distinct lengths, at most %d",
				ErrPolicyTooLarge, familyNames[i], len(lens), MaxPrefixLens)
		}
		out[i] = lens
	}
	return out, nil
}

// ruleFor collects the ranges of prefix and of every configured prefix that
// contains it; lens are the prefix lengths in use, longest first.
func ruleFor(prefix netip.Prefix, grants map[netip.Prefix][]grant, lens []uint8) (edgewardEwRule, error) {
	var ranges []grant
	for _, bits := range lens {
		if int(bits) > prefix.Bits() {
			continue
		}
		outer, _ := prefix.Addr().Prefix(int(bits))
		ranges = append(ranges, grants[outer]...)
	}
	ranges = dedupGrants(ranges)

	var rule edgewardEwRule
	if len(ranges) > MaxPortRanges {
		return rule, fmt.Errorf("%w: %s is covered by %d port ranges, at most %d",
			ErrPolicyTooLarge, prefix, len(ranges), MaxPortRanges)
	}
	rule.Nranges = uint32(copy(rule.Ranges[:], ranges))
	return rule, nil
}

// dedupGrants drops repeated ranges, keeping the first endpoint that grants
// each, in a stable order. Lists are short (a few ranges per prefix), so a
// linear scan beats a map.
func dedupGrants(in []grant) []grant {
	out := in[:0:0]
	for _, g := range in {
		if !slices.ContainsFunc(out, func(o grant) bool { return sameSpan(o, g) }) {
			out = append(out, g)
		}
	}
	return out
}

func sameSpan(a, b grant) bool {
	return a.Proto == b.Proto && a.First == b.First && a.Last == b.Last
}

func sortedPrefixes(grants map[netip.Prefix][]grant) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(grants))
	for p := range grants {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	return out
}

// buildTables lays out both families' tables and records their hashes and
// sizes in the settings.
func (p *Policy) buildTables() error {
	for i, name := range familyNames {
		l, err := buildLayout(p.entries[i])
		if err != nil {
			return fmt.Errorf("%s table: %w", name, err)
		}
		p.tables[i] = l.bucketValues()
		f := &p.settings.Family[i]
		lens := f.Lens[:f.Nlens]
		f.Hash = [2]edgewardEwTableHash{l.home.kernel(lens), l.stash.kernel(lens)}
		f.Entries = uint32(len(p.entries[i]))
	}
	return nil
}

// addrWords lays an address out as the program sees it: IPv4 in word 0,
// bytes in network order.
func addrWords(a netip.Addr) [4]uint32 {
	var w [4]uint32
	if a.Is4() {
		b4 := a.As4()
		w[0] = binary.NativeEndian.Uint32(b4[:])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[i*4:])
	}
	return w
}
