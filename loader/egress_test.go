package loader

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
	"github.com/edgeward/edgeward/internal/testenv"
)

// Return values of a tc program.
const (
	tcPass = 0xffffffff // TC_ACT_UNSPEC: go on as if we were not there
	tcDrop = 2          // TC_ACT_SHOT
)

var (
	a4       = netip.MustParseAddr
	gw4      = a4("198.51.100.2")
	gw6      = a4("2001:db8:100::2")
	vpnPeer4 = a4("203.0.113.10")
	s3v4     = a4("10.20.8.15")
	s3v6     = a4("2001:db8:20::15")
	proxy4   = a4("192.0.2.10")
	inet4    = a4("192.0.2.80")
	inet6    = a4("2001:db8:2::80")
)

// testPolicy is the endpoint part of PRODUCT.md's example.
func testPolicy(mode config.Mode) *config.Config {
	return &config.Config{
		Mode: mode,
		Endpoints: []config.Endpoint{
			{
				Name:  "vpn-peer",
				To:    []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")},
				Ports: []config.PortRange{{Proto: config.ProtoUDP, First: 51820, Last: 51820}},
			},
			{
				Name: "s3-private",
				To: []netip.Prefix{
					netip.MustParsePrefix("10.20.8.0/24"),
					netip.MustParsePrefix("2001:db8:20::/64"),
				},
				Ports: []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}},
			},
			{
				Name:  "wide-dns",
				To:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
				Ports: []config.PortRange{{Proto: config.ProtoUDP, First: 53, Last: 53}},
			},
		},
		Proxy: &config.Proxy{Address: netip.MustParseAddrPort("192.0.2.10:3128")},
	}
}

// openTestLoader loads the programs with pins on a private bpffs and applies
// cfg's policy.
func openTestLoader(t *testing.T, cfg *config.Config) *Loader {
	t.Helper()
	l, err := Open(Options{PinPath: testenv.BPFFS(t) + "/edgeward"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	if cfg == nil {
		return l
	}
	p, err := Compile(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ApplyPolicy(p); err != nil {
		t.Fatal(err)
	}
	return l
}

func tcp4(dst netip.Addr, dport uint16) []byte {
	return pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, dst, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(40000, dport)))
}

func udp4(dst netip.Addr, sport, dport uint16) []byte {
	return pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, dst, pkt.ProtoUDP, pkt.IPv4Options{}, pkt.UDP(sport, dport, []byte("x"))))
}

func ip6(dst netip.Addr, next uint8, payload []byte) []byte {
	return pkt.Ether(pkt.EtherIPv6, pkt.IPv6(gw6, dst, next, payload))
}

func frag4(dst netip.Addr, id uint16, offset uint16, more bool, payload []byte) []byte {
	o := pkt.IPv4Options{ID: id, FragOffset: offset, MoreFrags: more}
	return pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, dst, pkt.ProtoTCP, o, payload))
}

// egressCase is one packet, the verdict and reason the program must give,
// and so the one counter cell that must grow by one.
type egressCase struct {
	name    string
	l3      bool
	packet  []byte
	verdict Verdict
	reason  string
}

func egressCases() []egressCase {
	hbhRoutingDst := pkt.ExtHeader(pkt.ProtoRouting, 0,
		pkt.ExtHeader(pkt.ProtoDstOpts, 1,
			pkt.ExtHeader(pkt.ProtoTCP, 0, pkt.TCP(40000, 443))))
	tooLong := nestDstOpts(9, pkt.TCP(40000, 443))

	return []egressCase{
		{name: "endpoint tcp/443 v4", packet: tcp4(s3v4, 443), verdict: VerdictPass, reason: "endpoint"},
		{name: "endpoint other port v4", packet: tcp4(s3v4, 80), verdict: VerdictDrop, reason: "no_rule"},
		{name: "overlapping endpoint adds udp/53 inside 10.20.8.0/24", packet: udp4(s3v4, 40000, 53), verdict: VerdictPass, reason: "endpoint"},
		{name: "vpn peer transport", packet: udp4(vpnPeer4, 51820, 51820), verdict: VerdictPass, reason: "endpoint"},
		{name: "vpn peer wrong protocol", packet: tcp4(vpnPeer4, 51820), verdict: VerdictDrop, reason: "no_rule"},
		{name: "proxy tcp", packet: tcp4(proxy4, 3128), verdict: VerdictPass, reason: "proxy"},
		{name: "proxy udp", packet: udp4(proxy4, 40000, 3128), verdict: VerdictDrop, reason: "no_rule"},
		{name: "internet host", packet: tcp4(inet4, 443), verdict: VerdictDrop, reason: "no_rule"},
		{name: "udp probe unlisted", packet: udp4(inet4, 40000, 5353), verdict: VerdictDrop, reason: "no_rule"},
		{name: "icmp echo to endpoint", packet: pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoICMP, pkt.IPv4Options{}, pkt.ICMP(8, 0))), verdict: VerdictDrop, reason: "no_rule"},

		// BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header
		// and IPv4 frames without a whole IPv4 header, so short headers are
		// fed behind a VLAN tag or to the layer-3 program.
		{name: "truncated ethernet header behind vlan tag", packet: pkt.Ether(pkt.Ether8021Q, pkt.VLAN(1, pkt.Ether8021Q, nil))[:16], verdict: VerdictDrop, reason: "malformed"},
		{name: "truncated ipv4 header behind vlan tag", packet: pkt.Ether(pkt.Ether8021Q, pkt.VLAN(1, pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{}, nil)[:12])), verdict: VerdictDrop, reason: "malformed"},
		{name: "truncated ipv4 header on l3 device", l3: true, packet: pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{}, nil)[:16], verdict: VerdictDrop, reason: "malformed"},
		{name: "truncated ipv6 header on l3 device", l3: true, packet: pkt.IPv6(gw6, s3v6, pkt.ProtoTCP, nil)[:30], verdict: VerdictDrop, reason: "malformed"},
		{name: "ipv4 ihl below 5", packet: pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{IHL: 4}, pkt.TCP(1, 443))), verdict: VerdictDrop, reason: "malformed"},
		{name: "ipv4 options", packet: pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{Options: []byte{1, 1, 1, 0, 7, 7, 4, 0}}, pkt.TCP(1, 443))), verdict: VerdictPass, reason: "endpoint"},
		{name: "ipv4 options past the end", packet: pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{IHL: 15}, nil)), verdict: VerdictDrop, reason: "malformed"},
		{name: "truncated tcp header", packet: tcp4(s3v4, 443)[:14+20+10], verdict: VerdictDrop, reason: "malformed"},
		{name: "truncated udp header", packet: udp4(s3v4, 1, 53)[:14+20+6], verdict: VerdictDrop, reason: "malformed"},

		{name: "ipv6 endpoint", packet: ip6(s3v6, pkt.ProtoTCP, pkt.TCP(40000, 443)), verdict: VerdictPass, reason: "endpoint"},
		{name: "ipv6 endpoint other port", packet: ip6(s3v6, pkt.ProtoTCP, pkt.TCP(40000, 80)), verdict: VerdictDrop, reason: "no_rule"},
		{name: "ipv6 internet", packet: ip6(inet6, pkt.ProtoTCP, pkt.TCP(40000, 443)), verdict: VerdictDrop, reason: "no_rule"},
		{name: "ipv6 hop-by-hop routing dst-opts then tcp", packet: ip6(s3v6, pkt.ProtoHopOpts, hbhRoutingDst), verdict: VerdictPass, reason: "endpoint"},
		{name: "ipv6 extension chain too long", packet: ip6(s3v6, pkt.ProtoDstOpts, tooLong), verdict: VerdictDrop, reason: "header_chain_too_long"},
		{name: "ipv6 truncated extension header", packet: ip6(s3v6, pkt.ProtoHopOpts, []byte{pkt.ProtoTCP}), verdict: VerdictDrop, reason: "malformed"},
		{name: "ipv6 no next header", packet: ip6(s3v6, pkt.ProtoNone, nil), verdict: VerdictDrop, reason: "no_rule"},

		{name: "ipv6 first fragment allowed", packet: ip6(s3v6, pkt.ProtoFragment, pkt.FragHeader(pkt.ProtoTCP, 0, true, 77, pkt.TCP(40000, 443))), verdict: VerdictPass, reason: "endpoint"},
		{name: "ipv6 later fragment follows allowed first", packet: ip6(s3v6, pkt.ProtoFragment, pkt.FragHeader(pkt.ProtoTCP, 2, false, 77, []byte("01234567"))), verdict: VerdictPass, reason: "fragment"},
		{name: "ipv6 later fragment of unknown datagram", packet: ip6(s3v6, pkt.ProtoFragment, pkt.FragHeader(pkt.ProtoTCP, 2, false, 78, []byte("01234567"))), verdict: VerdictDrop, reason: "fragment_unknown"},

		{name: "ipv4 first fragment allowed", packet: frag4(s3v4, 500, 0, true, pkt.TCP(40000, 443)), verdict: VerdictPass, reason: "endpoint"},
		{name: "ipv4 later fragment follows allowed first", packet: frag4(s3v4, 500, 3, false, []byte("whose ports are not ports")), verdict: VerdictPass, reason: "fragment"},
		{name: "ipv4 first fragment denied", packet: frag4(s3v4, 501, 0, true, pkt.TCP(40000, 22)), verdict: VerdictDrop, reason: "no_rule"},
		{name: "ipv4 later fragment follows denied first", packet: frag4(s3v4, 501, 3, false, pkt.TCP(443, 443)), verdict: VerdictDrop, reason: "fragment_denied"},
		{name: "ipv4 later fragment with port-like bytes, unknown", packet: frag4(s3v4, 502, 3, false, pkt.TCP(443, 443)), verdict: VerdictDrop, reason: "fragment_unknown"},

		{name: "single vlan tag", packet: pkt.Ether(pkt.Ether8021Q, pkt.VLAN(7, pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(1, 443)))), verdict: VerdictPass, reason: "endpoint"},
		{name: "double vlan tag denied port", packet: pkt.Ether(pkt.Ether8021AD, pkt.VLAN(7, pkt.Ether8021Q, pkt.VLAN(8, pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(1, 22))))), verdict: VerdictDrop, reason: "no_rule"},
		{name: "double vlan tag allowed", packet: pkt.Ether(pkt.Ether8021AD, pkt.VLAN(7, pkt.Ether8021Q, pkt.VLAN(8, pkt.EtherIPv6, pkt.IPv6(gw6, s3v6, pkt.ProtoTCP, pkt.TCP(1, 443))))), verdict: VerdictPass, reason: "endpoint"},
		{name: "triple vlan tag", packet: pkt.Ether(pkt.Ether8021AD, pkt.VLAN(7, pkt.Ether8021Q, pkt.VLAN(8, pkt.Ether8021Q, pkt.VLAN(9, pkt.EtherIPv4, nil)))), verdict: VerdictDrop, reason: "header_chain_too_long"},
		{name: "truncated vlan tag", packet: pkt.Ether(pkt.Ether8021Q, []byte{0}), verdict: VerdictDrop, reason: "malformed"},

		{name: "l3 device ipv4", l3: true, packet: pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(1, 443)), verdict: VerdictPass, reason: "endpoint"},
		{name: "l3 device ipv4 denied", l3: true, packet: pkt.IPv4(gw4, inet4, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(1, 443)), verdict: VerdictDrop, reason: "no_rule"},
		{name: "l3 device ipv6", l3: true, packet: pkt.IPv6(gw6, s3v6, pkt.ProtoTCP, pkt.TCP(1, 443)), verdict: VerdictPass, reason: "endpoint"},
		{name: "l3 device garbage", l3: true, packet: []byte("\x00this is not an IP packet"), verdict: VerdictDrop, reason: "malformed"},

		{name: "arp", packet: pkt.Ether(pkt.EtherARP, pkt.ARPRequest(gw4, a4("198.51.100.1"))), verdict: VerdictPass, reason: "arp"},
		{name: "ndp neighbour solicitation", packet: ip6(a4("ff02::1:ff00:1"), pkt.ProtoICMPv6, pkt.ICMP(135, 0)), verdict: VerdictPass, reason: "ndp"},
		{name: "ndp router solicitation", packet: ip6(a4("ff02::2"), pkt.ProtoICMPv6, pkt.ICMP(133, 0)), verdict: VerdictPass, reason: "ndp"},
		{name: "mld report behind hop-by-hop", packet: ip6(a4("ff02::16"), pkt.ProtoHopOpts, pkt.ExtHeader(pkt.ProtoICMPv6, 0, pkt.ICMP(143, 0))), verdict: VerdictPass, reason: "mld"},
		{name: "icmpv6 echo", packet: ip6(inet6, pkt.ProtoICMPv6, pkt.ICMP(128, 0)), verdict: VerdictDrop, reason: "no_rule"},
		{name: "dhcp client", packet: udp4(a4("255.255.255.255"), 68, 67), verdict: VerdictPass, reason: "dhcp"},
		{name: "dhcp wrong source port", packet: udp4(a4("255.255.255.255"), 40000, 67), verdict: VerdictDrop, reason: "no_rule"},
		{name: "dhcp-shaped udp to an internet host", packet: udp4(inet4, 68, 67), verdict: VerdictDrop, reason: "no_rule"},
		{name: "ndp-shaped icmpv6 to an internet host", packet: ip6(inet6, pkt.ProtoICMPv6, pkt.ICMP(135, 0)), verdict: VerdictDrop, reason: "no_rule"},
		{name: "mld-shaped icmpv6 to an internet host", packet: ip6(inet6, pkt.ProtoICMPv6, pkt.ICMP(143, 0)), verdict: VerdictDrop, reason: "no_rule"},
		{name: "dhcpv6-shaped udp to an internet host", packet: ip6(inet6, pkt.ProtoUDP, pkt.UDP(546, 547, nil)), verdict: VerdictDrop, reason: "no_rule"},
		{name: "ipv6 later fragment whose payload looks like headers", packet: ip6(s3v6, pkt.ProtoFragment, pkt.FragHeader(pkt.ProtoFragment, 7, false, 0x5006, pkt.FragHeader(pkt.ProtoUDP, 0, false, 1, pkt.UDP(1, 5353, nil)))), verdict: VerdictDrop, reason: "fragment_unknown"},
		{name: "ipv6 two fragment headers", packet: ip6(s3v6, pkt.ProtoFragment, pkt.FragHeader(pkt.ProtoFragment, 0, true, 0x5007, pkt.FragHeader(pkt.ProtoTCP, 0, true, 2, pkt.TCP(1, 443)))), verdict: VerdictDrop, reason: "malformed"},
		{name: "dhcpv6 client", packet: ip6(a4("ff02::1:2"), pkt.ProtoUDP, pkt.UDP(546, 547, nil)), verdict: VerdictPass, reason: "dhcp"},
		{name: "lldp", packet: pkt.Ether(0x88cc, make([]byte, 32)), verdict: VerdictDrop, reason: "unsupported_protocol"},
	}
}

// nestDstOpts wraps inner in n destination-options headers, the innermost
// pointing at TCP.
func nestDstOpts(n int, inner []byte) []byte {
	b := pkt.ExtHeader(pkt.ProtoTCP, 0, inner)
	for range n - 1 {
		b = pkt.ExtHeader(pkt.ProtoDstOpts, 0, b)
	}
	return b
}

func TestEgressVerdicts(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))

	for _, tc := range egressCases() {
		t.Run(tc.name, func(t *testing.T) {
			before := readCounters(t, l)
			ret := runEgress(t, l, tc.l3, tc.packet)

			wantRet := uint32(tcPass)
			if tc.verdict == VerdictDrop {
				wantRet = tcDrop
			}
			if ret != wantRet {
				t.Errorf("program returned %#x, want %#x (%s)", ret, wantRet, tc.verdict)
			}
			assertOneCount(t, before, readCounters(t, l), tc.verdict, tc.reason, len(tc.packet))
		})
	}
}

func TestEgressAuditModeDropsNothing(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeAudit))

	for _, tc := range egressCases() {
		t.Run(tc.name, func(t *testing.T) {
			before := readCounters(t, l)
			if ret := runEgress(t, l, tc.l3, tc.packet); ret != tcPass {
				t.Errorf("audit mode returned %#x, want pass", ret)
			}

			want := tc.verdict
			if want == VerdictDrop {
				want = VerdictAudit
			}
			assertOneCount(t, before, readCounters(t, l), want, tc.reason, len(tc.packet))
		})
	}
}

func TestEgressWithoutPolicyDrops(t *testing.T) {
	l := openTestLoader(t, nil)

	before := readCounters(t, l)
	packet := tcp4(s3v4, 443)
	if ret := runEgress(t, l, false, packet); ret != tcDrop {
		t.Fatalf("program returned %#x without a policy, want drop", ret)
	}
	assertOneCount(t, before, readCounters(t, l), VerdictDrop, "no_policy", len(packet))
}

func runEgress(t *testing.T, l *Loader, l3 bool, packet []byte) uint32 {
	t.Helper()
	prog := l.objs.TCEgressEth
	if l3 {
		prog = l.objs.TCEgressL3
	}
	ret, err := prog.Run(&ebpf.RunOptions{Data: packet})
	if err != nil {
		t.Fatalf("run program on %d bytes: %v", len(packet), err)
	}
	return ret
}

type cell struct {
	Hook, Verdict, Reason string
}

type tally struct{ Packets, Bytes uint64 }

func readCounters(t *testing.T, l *Loader) map[cell]tally {
	t.Helper()
	cs, err := l.Maps().Counters()
	if err != nil {
		t.Fatal(err)
	}
	out := map[cell]tally{}
	for _, c := range cs {
		out[cell{c.Hook.String(), c.Verdict.String(), c.Reason.String()}] = tally{c.Packets, c.Bytes}
	}
	return out
}

// assertOneCount checks that exactly one cell grew, by one packet of size
// bytes, and that it is the expected one of the egress hook.
func assertOneCount(t *testing.T, before, after map[cell]tally, v Verdict, reason string, size int) {
	t.Helper()
	assertOneCountAt(t, "tc_egress", before, after, v, reason, size)
}

// assertOneCountAt is assertOneCount for any hook.
func assertOneCountAt(t *testing.T, hook string, before, after map[cell]tally, v Verdict, reason string, size int) {
	t.Helper()
	got := map[cell]tally{}
	for k, a := range after {
		b := before[k]
		if a != b {
			got[k] = tally{a.Packets - b.Packets, a.Bytes - b.Bytes}
		}
	}
	want := map[cell]tally{{hook, v.String(), reason}: {1, uint64(size)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counter change (-want +got):\n%s", diff)
	}
}
