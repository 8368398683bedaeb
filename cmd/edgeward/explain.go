package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/netwatch"
)

// explainRequest is what `edgeward explain` was asked.
type explainRequest struct {
	from, on string // interface the packet arrives on, or leaves by
	src      string // source address, optionally with port
	flags    string // TCP flags
	proto    string
	dst      string
}

// explainReport is the answer, as text or JSON.
type explainReport struct {
	Packet       explainPacket `json:"packet"`
	Interface    string        `json:"interface"`
	Role         string        `json:"role"`
	Direction    string        `json:"direction"`
	Hook         string        `json:"hook,omitempty"`
	Program      string        `json:"program,omitempty"`
	SameAsLoaded bool          `json:"same_as_loaded,omitempty"`
	Verdict      string        `json:"verdict"`
	Reason       string        `json:"reason"`
	Generation   uint32        `json:"generation,omitempty"`
	Rule         explainRule   `json:"rule"`
	Flow         *explainFlow  `json:"flow,omitempty"`
	Learned      *explainEntry `json:"learned,omitempty"`
	Warnings     []string      `json:"warnings,omitempty"`
}

type explainPacket struct {
	Proto    string `json:"proto"`
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	TCPFlags string `json:"tcp_flags,omitempty"`
}

// explainRule names what decided: kind is endpoint, proxy, learned, flow,
// or the reason itself for decisions no configured rule made.
type explainRule struct {
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	Text string `json:"text"`
}

type explainFlow struct {
	State           string  `json:"state"`
	LifetimeSeconds float64 `json:"lifetime_seconds"`
	OpenedAs        string  `json:"opened_as"`
}

type explainEntry struct {
	Name            string  `json:"name"`
	Address         string  `json:"address"`
	Ports           string  `json:"ports"`
	LifetimeSeconds float64 `json:"lifetime_seconds"`
}

// cmdExplain judges a made-up packet with the loaded data plane's
// programs and maps and says why.
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	f := newFlags("explain", stderr)
	var req explainRequest
	f.StringVar(&req.from, "from", "", "the packet arrives on `IFACE` (a LAN interface, or an uplink for inbound packets)")
	f.StringVar(&req.on, "on", "", "the packet leaves by `IFACE` (default: where the gateway routes it)")
	f.StringVar(&req.src, "src", "", "source `ADDR[:PORT]` (default: the gateway's address toward the destination, the first host of a LAN)")
	f.StringVar(&req.flags, "tcp-flags", "", "TCP `FLAGS`, comma separated: syn, ack, fin, rst (default syn, ack when inbound)")
	asJSON := f.Bool("json", false, "print JSON")
	f.Usage = func() {
		fmt.Fprintln(f.Output(), "usage: edgeward explain [-c FILE] [-from IFACE | -on IFACE] [-src ADDR[:PORT]] [-json] tcp|udp|icmp ADDR[:PORT]")
		f.PrintDefaults()
	}
	positional, status, ok := parseInterleaved(f, args)
	if !ok {
		return status
	}
	if len(positional) != 2 {
		f.Usage()
		return exitUsage
	}
	req.proto, req.dst = positional[0], positional[1]

	cfg, ok := f.loadConfig(stderr)
	if !ok {
		return exitUsage
	}
	report, err := explain(cfg, req)
	if err != nil {
		fmt.Fprintf(stderr, "edgeward explain: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		writeJSON(stdout, report)
	} else {
		printExplanation(stdout, report)
	}
	return exitOK
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments.
func parseInterleaved(f *commandFlags, args []string) (positional []string, status int, ok bool) {
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		if f.NArg() == 0 {
			return positional, exitOK, true
		}
		positional = append(positional, f.Arg(0))
		args = f.Args()[1:]
	}
}

// explain builds the probe of req, runs it and describes the result.
func explain(cfg *config.Config, req explainRequest) (*explainReport, error) {
	probe, report, err := buildProbe(cfg, req)
	if err != nil {
		return nil, err
	}
	if report.Hook == "" { // no program judges this packet
		transparentDNS(cfg, probe, report)
		return report, nil
	}

	x, err := loader.Explain(cfg.Paths.BPFFS, *probe)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("nothing of Edgeward is loaded under %s: %w", cfg.Paths.BPFFS, err)
	}
	if err != nil {
		return nil, err
	}
	describe(report, cfg, x)
	transparentDNS(cfg, probe, report)
	report.Warnings = append(report.Warnings, policyWarnings(cfg, x)...)
	return report, nil
}

// buildProbe turns req into a probe and starts the report. For a packet
// no Edgeward program judges, the report has no hook and a verdict
// already.
func buildProbe(cfg *config.Config, req explainRequest) (*loader.Probe, *explainReport, error) {
	proto, err := parseProto(req.proto)
	if err != nil {
		return nil, nil, err
	}
	dst, err := parseEndpoint(req.dst, proto)
	if err != nil {
		return nil, nil, fmt.Errorf("destination: %w", err)
	}
	if req.from != "" && req.on != "" {
		return nil, nil, errors.New("give -from or -on, not both")
	}

	probe := &loader.Probe{Proto: proto, Dst: dst}
	report := &explainReport{}
	var srcDefault netip.Addr
	switch {
	case req.from != "":
		srcDefault, err = arriving(cfg, req.from, probe, report)
	default:
		srcDefault, err = leaving(cfg, req.on, probe, report)
	}
	if err != nil {
		return nil, nil, err
	}

	if probe.Src, err = sourceOf(req.src, srcDefault, proto); err != nil {
		return nil, nil, err
	}
	if probe.TCPFlags, err = parseTCPFlags(req.flags, probe.Hook == loader.HookUplinkIngress); err != nil {
		return nil, nil, err
	}
	report.Packet = packetOf(probe, req.proto)
	markGuardedDNS(cfg, probe)
	return probe, report, nil
}

// markGuardedDNS gives a DNS query to an upstream the mark the DNS guard's
// queue sets on the queries it accepts, so that the data plane's gate
// judges it as it would an accepted one (transparent mode only). Whether
// the queue accepts it depends on the name asked: see transparentDNS.
func markGuardedDNS(cfg *config.Config, p *loader.Probe) {
	if cfg.DNS.Transparent && p.Proto == pkt.ProtoUDP && p.Dst.Port() == 53 && isUpstream(cfg, p.Dst) {
		p.Mark = loader.GuardMark
	}
}

// isUpstream tells whether server is a configured upstream DNS server.
func isUpstream(cfg *config.Config, server netip.AddrPort) bool {
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	for _, u := range cfg.DNS.Upstreams {
		for _, s := range u.Servers {
			if netip.AddrPortFrom(s.Addr().Unmap(), s.Port()) == server {
				return true
			}
		}
	}
	return false
}

// transparentDNS adds to a passing verdict what transparent mode does to
// DNS sent around the guard: the netfilter rules reset DNS over TCP, the
// queue drops queries to a server that is no upstream, and it passes
// queries to an upstream only for names on dns.names, which explain
// cannot know.
func transparentDNS(cfg *config.Config, p *loader.Probe, r *explainReport) {
	if !cfg.DNS.Transparent || r.Verdict != "pass" || p.Dst.Port() != 53 || p.Hook == loader.HookUplinkIngress {
		return
	}
	if r.Reason == "service" || r.Role == config.RoleLoopback.String() {
		return // to the gateway itself: its own port 53 is the guard, not queued
	}
	switch {
	case p.Proto == pkt.ProtoTCP:
		r.Verdict, r.Reason = "drop", "dns_over_tcp"
		r.Rule = explainRule{Kind: "transparent_dns", Text: "transparent DNS resets DNS over TCP sent around the guard"}
	case p.Proto != pkt.ProtoUDP:
	case !isUpstream(cfg, p.Dst):
		r.Verdict, r.Reason = "drop", "wrong_server"
		r.Rule = explainRule{Kind: "transparent_dns", Text: fmt.Sprintf("transparent DNS drops DNS to %s, which is no upstream in dns.upstreams", p.Dst)}
	default:
		r.Warnings = append(r.Warnings, fmt.Sprintf("transparent DNS: the guard's queue lets a query to %s through only for a name on dns.names, and drops the rest; this verdict assumes an allowed name", p.Dst))
	}
}

// arriving sets up a probe that arrives on the interface called name and
// returns the default source address for it.
func arriving(cfg *config.Config, name string, probe *loader.Probe, report *explainReport) (netip.Addr, error) {
	l, err := linkByName(name)
	if err != nil {
		return netip.Addr{}, err
	}
	role := cfg.Classify(name)
	report.Interface, report.Role, report.Direction = name, role.String(), "in"
	probe.Ifindex, probe.L3 = l.Index, l.L3

	switch role {
	case config.RoleLAN:
		probe.Hook = loader.HookXDPLAN
		report.Hook = probe.Hook.String()
		return firstHost(l.Index, probe.Dst.Addr())
	case config.RoleUplink:
		probe.Hook = loader.HookUplinkIngress
		report.Hook = probe.Hook.String()
		return netip.Addr{}, nil // the remote side: -src is required
	}
	return netip.Addr{}, fmt.Errorf("%s is a %s interface: Edgeward judges packets arriving on LAN interfaces and uplinks only", name, role)
}

// leaving sets up a probe that the gateway sends by the interface called
// name, or by the one its routes pick when name is empty, and returns the
// default source address.
func leaving(cfg *config.Config, name string, probe *loader.Probe, report *explainReport) (netip.Addr, error) {
	route, err := routeTo(probe.Dst.Addr())
	if err != nil && name == "" {
		return netip.Addr{}, err
	}
	if name == "" {
		name = route.ifname
	}
	l, err := linkByName(name)
	if err != nil {
		return netip.Addr{}, err
	}
	role := cfg.Classify(name)
	report.Interface, report.Role, report.Direction = name, role.String(), "out"
	probe.Ifindex, probe.L3 = l.Index, l.L3

	if role == config.RoleUplink {
		probe.Hook = loader.HookTCEgress
		report.Hook = probe.Hook.String()
	} else {
		report.Verdict, report.Reason = "pass", "not_enforced"
		report.Rule = explainRule{Kind: "not_enforced", Text: fmt.Sprintf("%s is a %s interface: Edgeward does not judge what leaves by it", name, role)}
	}
	if route.src.IsValid() && route.ifname == name {
		return route.src, nil
	}
	return firstAddress(l.Index, probe.Dst.Addr())
}

// route is where the gateway would send a packet.
type route struct {
	ifname string
	src    netip.Addr
}

// routeTo asks the kernel's routing table of this network namespace.
func routeTo(dst netip.Addr) (route, error) {
	routes, err := netlink.RouteGet(net.IP(dst.AsSlice()))
	if err != nil || len(routes) == 0 {
		return route{}, fmt.Errorf("no route to %s here; name the interface with -on", dst)
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return route{}, fmt.Errorf("route to %s: interface %d: %w", dst, routes[0].LinkIndex, err)
	}
	src, _ := netip.AddrFromSlice(routes[0].Src)
	return route{ifname: l.Attrs().Name, src: src.Unmap()}, nil
}

func linkByName(name string) (netwatch.Link, error) {
	links, err := netwatch.List()
	if err != nil {
		return netwatch.Link{}, err
	}
	for _, l := range links {
		if l.Name == name {
			return l, nil
		}
	}
	return netwatch.Link{}, fmt.Errorf("no interface called %q in this network namespace", name)
}

// firstAddress is the interface's first address of dst's family.
func firstAddress(ifindex int, dst netip.Addr) (netip.Addr, error) {
	prefixes, err := interfacePrefixes(ifindex, dst)
	if err != nil {
		return netip.Addr{}, err
	}
	return prefixes[0].Addr(), nil
}

// firstHost is the first host address of the interface's first subnet of
// dst's family that is not the gateway's own: a stand-in for a LAN host.
func firstHost(ifindex int, dst netip.Addr) (netip.Addr, error) {
	prefixes, err := interfacePrefixes(ifindex, dst)
	if err != nil {
		return netip.Addr{}, err
	}
	own := prefixes[0].Addr()
	host := prefixes[0].Masked().Addr().Next()
	if host == own {
		host = host.Next()
	}
	return host, nil
}

// interfacePrefixes lists the interface's global addresses of dst's family.
func interfacePrefixes(ifindex int, dst netip.Addr) ([]netip.Prefix, error) {
	family := netlink.FAMILY_V4
	if dst.Is6() && !dst.Is4In6() {
		family = netlink.FAMILY_V6
	}
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("interface %d: %w", ifindex, err)
	}
	addrs, err := netlink.AddrList(l, family)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", l.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no address of the destination's family; give -src", l.Attrs().Name)
	}
	return out, nil
}

func parseProto(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return pkt.ProtoTCP, nil
	case "udp":
		return pkt.ProtoUDP, nil
	case "icmp", "icmpv6", "icmp6":
		return pkt.ProtoICMP, nil
	}
	return 0, fmt.Errorf("protocol %q: want tcp, udp or icmp", s)
}

// parseEndpoint reads ADDR:PORT ([ADDR]:PORT for IPv6), or ADDR alone for
// ICMP.
func parseEndpoint(s string, proto uint8) (netip.AddrPort, error) {
	if proto == pkt.ProtoICMP {
		a, err := netip.ParseAddr(strings.Trim(s, "[]"))
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%q: want an address (ICMP has no ports)", s)
		}
		return netip.AddrPortFrom(a.Unmap(), 0), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: want ADDR:PORT, [IPv6]:PORT for IPv6", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// ephemeralPort is the source port of a probe whose -src names none.
const ephemeralPort = 40000

// sourceOf reads -src, or takes def with an ephemeral port.
func sourceOf(s string, def netip.Addr, proto uint8) (netip.AddrPort, error) {
	port := uint16(ephemeralPort)
	if proto == pkt.ProtoICMP {
		port = 0
	}
	if s == "" {
		if !def.IsValid() {
			return netip.AddrPort{}, errors.New("a packet arriving on an uplink comes from a remote address: give it with -src ADDR:PORT")
		}
		return netip.AddrPortFrom(def, port), nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("-src %q: want ADDR or ADDR:PORT", s)
	}
	return netip.AddrPortFrom(a.Unmap(), port), nil
}

var tcpFlagNames = map[string]uint8{"syn": pkt.TCPSyn, "ack": pkt.TCPAck, "fin": pkt.TCPFin, "rst": pkt.TCPRst}

// parseTCPFlags reads -tcp-flags. Without it a probe opens a connection
// (SYN), but one arriving from the uplink continues one (ACK): a bare SYN
// from outside is never a reply.
func parseTCPFlags(s string, fromUplink bool) (uint8, error) {
	if s == "" {
		if fromUplink {
			return pkt.TCPAck, nil
		}
		return pkt.TCPSyn, nil
	}
	var flags uint8
	for _, name := range strings.Split(strings.ToLower(s), ",") {
		f, ok := tcpFlagNames[strings.TrimSpace(name)]
		if !ok {
			return 0, fmt.Errorf("-tcp-flags: %q is not one of syn, ack, fin, rst", name)
		}
		flags |= f
	}
	return flags, nil
}

func tcpFlagsString(flags uint8) string {
	var names []string
	for _, name := range []string{"syn", "ack", "fin", "rst"} {
		if flags&tcpFlagNames[name] != 0 {
			names = append(names, name)
		}
	}
	return strings.Join(names, ",")
}

func packetOf(p *loader.Probe, proto string) explainPacket {
	out := explainPacket{Proto: strings.ToLower(proto), Src: p.Src.String(), Dst: p.Dst.String()}
	if p.Proto == pkt.ProtoICMP {
		out.Src, out.Dst = p.Src.Addr().String(), p.Dst.Addr().String()
	}
	if p.Proto == pkt.ProtoTCP {
		out.TCPFlags = tcpFlagsString(p.TCPFlags)
	}
	return out
}

// describe fills the report with the kernel's decision and the rule that
// made it, named from the config.
func describe(r *explainReport, cfg *config.Config, x *loader.Explanation) {
	r.Program, r.SameAsLoaded = x.Program, x.SameAsLoaded
	r.Verdict, r.Reason, r.Generation = x.Verdict.String(), x.Reason.String(), x.Generation
	r.Rule = ruleOf(cfg, x)
	if x.Flow != nil {
		r.Flow = &explainFlow{State: x.Flow.State, LifetimeSeconds: x.Flow.Lifetime.Seconds(), OpenedAs: x.Flow.Reason.String()}
	}
	if x.Learned != nil {
		r.Learned = &explainEntry{
			Name: dnsNameAt(cfg, x.Learned.Name), Address: x.Learned.Addr.String(),
			Ports: portsString(x.Learned.Ports), LifetimeSeconds: x.Learned.Lifetime.Seconds(),
		}
	}
}

// ruleOf names what decided x.
func ruleOf(cfg *config.Config, x *loader.Explanation) explainRule {
	reason := x.Reason.String()
	switch reason {
	case "endpoint", "flow_adopted", "peer":
		name := endpointAt(cfg, x.Endpoint)
		return explainRule{Kind: "endpoint", Name: name, Text: fmt.Sprintf("endpoint %q: %s", name, reasonText(reason))}
	case "proxy":
		text := "the proxy"
		if cfg.Proxy != nil {
			text = "the proxy at " + cfg.Proxy.Address.String()
		}
		return explainRule{Kind: "proxy", Text: text}
	case "learned":
		name := dnsNameAt(cfg, x.Endpoint)
		return explainRule{Kind: "learned", Name: name, Text: fmt.Sprintf("learned by the DNS guard for %q", name)}
	case "flow":
		return explainRule{Kind: "flow", Text: reasonText(reason)}
	case "no_rule":
		if x.LearnedExpired && x.Learned != nil {
			name := dnsNameAt(cfg, x.Learned.Name)
			return explainRule{Kind: reason, Name: name, Text: fmt.Sprintf("learned for %q, but the entry expired %s ago", name, (-x.Learned.Lifetime).Round(time.Second))}
		}
	}
	return explainRule{Kind: reason, Text: reasonText(reason)}
}

func endpointAt(cfg *config.Config, i uint16) string {
	if int(i) < len(cfg.Endpoints) {
		return cfg.Endpoints[i].Name
	}
	return "#" + strconv.Itoa(int(i))
}

func dnsNameAt(cfg *config.Config, i uint16) string {
	if int(i) < len(cfg.DNS.Names) {
		return cfg.DNS.Names[i].Match
	}
	return "#" + strconv.Itoa(int(i))
}

func portsString(ports []config.PortRange) string {
	var out []string
	for _, p := range ports {
		out = append(out, p.String())
	}
	return strings.Join(out, ",")
}

// policyWarnings says when the names in the report may not be the ones
// the kernel's policy was made from.
func policyWarnings(cfg *config.Config, x *loader.Explanation) []string {
	var warnings []string
	if !x.SameAsLoaded {
		warnings = append(warnings, fmt.Sprintf("the loaded %s comes from another build of edgeward: this is how this binary's program decides", x.Program))
	}
	if x.Generation == 0 {
		return warnings
	}
	maps, err := loader.OpenPinned(cfg.Paths.BPFFS)
	if err != nil {
		return warnings
	}
	defer maps.Close()
	p, err := loader.Compile(cfg, x.Generation)
	if err != nil {
		return append(warnings, fmt.Sprintf("%s does not compile (%v): rule names may be wrong", cfg.File, err))
	}
	if same, err := maps.ActiveMatches(p); err == nil && !same {
		warnings = append(warnings, fmt.Sprintf("%s differs from the active policy (generation %d), which was made from an earlier version of it: rule names may be wrong; run edgeward reload", cfg.File, x.Generation))
	}
	return warnings
}

// printExplanation writes the report for people.
func printExplanation(w io.Writer, r *explainReport) {
	dir := "leaving by"
	if r.Direction == "in" {
		dir = "arriving on"
	}
	flags := ""
	if r.Packet.TCPFlags != "" {
		flags = " [" + r.Packet.TCPFlags + "]"
	}
	fmt.Fprintf(w, "packet:     %s %s -> %s%s, %s %s (%s)\n", r.Packet.Proto, r.Packet.Src, r.Packet.Dst, flags, dir, r.Interface, r.Role)
	if r.Program != "" {
		same := "same as loaded"
		if !r.SameAsLoaded {
			same = "NOT the loaded build"
		}
		fmt.Fprintf(w, "program:    %s on hook %s (%s)\n", r.Program, r.Hook, same)
	}
	fmt.Fprintf(w, "verdict:    %s\n", r.Verdict)
	fmt.Fprintf(w, "reason:     %s\n", r.Reason)
	fmt.Fprintf(w, "rule:       %s\n", r.Rule.Text)
	if r.Generation != 0 {
		fmt.Fprintf(w, "generation: %d\n", r.Generation)
	}
	if f := r.Flow; f != nil {
		fmt.Fprintf(w, "flow:       %s, opened as %s, %s left\n", f.State, f.OpenedAs, seconds(f.LifetimeSeconds))
	}
	if l := r.Learned; l != nil {
		left := seconds(l.LifetimeSeconds) + " left"
		if l.LifetimeSeconds <= 0 {
			left = "expired"
		}
		fmt.Fprintf(w, "learned:    %s for %q (%s), %s\n", l.Address, l.Name, l.Ports, left)
	}
	for _, warning := range r.Warnings {
		fmt.Fprintf(w, "warning:    %s\n", warning)
	}
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}
