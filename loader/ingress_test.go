package loader

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// Return values of an XDP program.
const (
	xdpDrop = 1 // XDP_DROP
	xdpPass = 2 // XDP_PASS
)

// TCP flags for the packet builder.
const (
	fin = 0x01
	syn = 0x02
	rst = 0x04
	ack = 0x10
)

// tcpFlags builds a TCP header with the given flags.
func tcpFlags(sport, dport uint16, flags byte) []byte {
	b := pkt.TCP(sport, dport)
	b[13] = flags
	return b
}

// in4 builds an IPv4 packet from src to the gateway.
func in4(src netip.Addr, proto uint8, l4 []byte) []byte {
	return pkt.Ether(pkt.EtherIPv4, pkt.IPv4(src, gw4, proto, pkt.IPv4Options{}, l4))
}

func in6(src netip.Addr, next uint8, l4 []byte) []byte {
	return pkt.Ether(pkt.EtherIPv6, pkt.IPv6(src, gw6, next, l4))
}

// icmpQuote builds an ICMP error of type/code quoting an IPv4 packet.
func icmpQuote(typ, code uint8, quoted []byte) []byte {
	return append(pkt.ICMP(typ, code), quoted...)
}

// ingressCase is one arriving packet and what xdp_uplink must do with it.
type ingressCase struct {
	name    string
	packet  []byte
	verdict Verdict
	reason  string
}

// ingressCases run in order: the first rows open flows that later rows
// answer.
func ingressCases() []ingressCase {
	quotedFlow := pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(40000, 443))
	quotedOther := pkt.IPv4(gw4, inet4, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(40000, 443))
	quotedFlow6 := pkt.IPv6(gw6, s3v6, pkt.ProtoTCP, pkt.TCP(40000, 443))

	return []ingressCase{
		{"syn-ack of an allowed flow", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, 40000, syn|ack)), VerdictPass, "flow"},
		{"data of an allowed flow", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, 40000, ack)), VerdictPass, "flow"},
		{"ipv6 reply of an allowed flow", in6(s3v6, pkt.ProtoTCP, tcpFlags(443, 40000, syn|ack)), VerdictPass, "flow"},
		{"unsolicited syn from the internet", in4(inet4, pkt.ProtoTCP, tcpFlags(1234, 22, syn)), VerdictDrop, "unsolicited"},
		{"unsolicited udp from the internet", in4(inet4, pkt.ProtoUDP, pkt.UDP(53, 40000, nil)), VerdictDrop, "unsolicited"},
		{"unsolicited ipv6 syn", in6(inet6, pkt.ProtoTCP, tcpFlags(1234, 22, syn)), VerdictDrop, "unsolicited"},
		{"reply from the right host, wrong port", in4(s3v4, pkt.ProtoTCP, tcpFlags(80, 40000, ack)), VerdictDrop, "unsolicited"},
		{"udp from the vpn peer's port, no socket waits", in4(vpnPeer4, pkt.ProtoUDP, pkt.UDP(51820, 51820, []byte("wg"))), VerdictDrop, "unsolicited"},
		{"bare syn from an endpoint port", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, 45000, syn)), VerdictDrop, "unsolicited"},
		{"ack from an endpoint port, no socket waits", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, 45001, ack)), VerdictDrop, "unsolicited"},
		{"then a bare syn on that tuple", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, 45001, syn)), VerdictDrop, "unsolicited"},
		{"bare syn on an allowed flow is no reply", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, 40000, syn)), VerdictDrop, "unsolicited"},
		{"frag needed about an allowed flow", in4(a4("198.51.100.1"), pkt.ProtoICMP, icmpQuote(3, 4, quotedFlow)), VerdictPass, "icmp_error"},
		{"frag needed about no flow", in4(a4("198.51.100.1"), pkt.ProtoICMP, icmpQuote(3, 4, quotedOther)), VerdictDrop, "unsolicited"},
		{"error quoting a flow, sent to another host", pkt.Ether(pkt.EtherIPv4, pkt.IPv4(a4("198.51.100.1"), a4("10.10.0.2"), pkt.ProtoICMP, pkt.IPv4Options{}, icmpQuote(3, 4, quotedFlow))), VerdictDrop, "unsolicited"},
		{"truncated quote", in4(a4("198.51.100.1"), pkt.ProtoICMP, icmpQuote(3, 4, quotedFlow[:22])), VerdictDrop, "unsolicited"},
		{"packet too big about an allowed flow", in6(a4("2001:db8:100::1"), pkt.ProtoICMPv6, icmpQuote(2, 0, quotedFlow6)), VerdictPass, "icmp_error"},
		{"icmp echo request", in4(inet4, pkt.ProtoICMP, pkt.ICMP(8, 0)), VerdictDrop, "unsolicited"},
		{"dhcp reply", in4(a4("198.51.100.1"), pkt.ProtoUDP, pkt.UDP(67, 68, nil)), VerdictPass, "dhcp"},
		{"dhcpv6 reply", in6(a4("fe80::1"), pkt.ProtoUDP, pkt.UDP(547, 546, nil)), VerdictPass, "dhcp"},
		{"router advertisement", in6(a4("fe80::1"), pkt.ProtoICMPv6, pkt.ICMP(134, 0)), VerdictPass, "ndp"},
		{"neighbour solicitation", in6(a4("fe80::1"), pkt.ProtoICMPv6, pkt.ICMP(135, 0)), VerdictPass, "ndp"},
		{"mld query", in6(a4("fe80::1"), pkt.ProtoHopOpts, pkt.ExtHeader(pkt.ProtoICMPv6, 0, pkt.ICMP(130, 0))), VerdictPass, "mld"},
		{"arp", pkt.Ether(pkt.EtherARP, pkt.ARPRequest(a4("198.51.100.1"), gw4)), VerdictPass, "arp"},
		{"malformed", pkt.Ether(pkt.Ether8021Q, pkt.VLAN(1, pkt.EtherIPv4, []byte{0x45, 0})), VerdictDrop, "malformed"},
		{"first fragment of a reply", pkt.Ether(pkt.EtherIPv4, pkt.IPv4(s3v4, gw4, pkt.ProtoTCP, pkt.IPv4Options{ID: 9, MoreFrags: true}, tcpFlags(443, 40000, ack))), VerdictPass, "flow"},
		{"later fragment of that reply", pkt.Ether(pkt.EtherIPv4, pkt.IPv4(s3v4, gw4, pkt.ProtoTCP, pkt.IPv4Options{ID: 9, FragOffset: 3}, []byte("rest of it"))), VerdictPass, "fragment"},
		{"rst of an allowed flow", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, 40000, rst)), VerdictPass, "flow"},
	}
}

// openFlows sends the packets whose flows ingressCases answer.
func openFlows(t *testing.T, l *Loader) {
	t.Helper()
	for _, p := range [][]byte{
		pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{}, tcpFlags(40000, 443, syn))),
		pkt.Ether(pkt.EtherIPv6, pkt.IPv6(gw6, s3v6, pkt.ProtoTCP, tcpFlags(40000, 443, syn))),
	} {
		if ret := runEgress(t, l, false, p); ret != tcPass {
			t.Fatalf("egress dropped the packet that opens a flow")
		}
	}
}

func TestUplinkIngressVerdicts(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))
	openFlows(t, l)

	for _, tc := range ingressCases() {
		t.Run(tc.name, func(t *testing.T) {
			before := readCounters(t, l)
			ret := runProg(t, l.objs.XDPUplink, tc.packet)

			want := uint32(xdpPass)
			if tc.verdict == VerdictDrop {
				want = xdpDrop
			}
			if ret != want {
				t.Errorf("xdp_uplink returned %d, want %d (%s)", ret, want, tc.verdict)
			}
			assertOneCountAt(t, "uplink_ingress", before, readCounters(t, l), tc.verdict, tc.reason, len(tc.packet))
		})
	}
}

// TestUplinkIngressFlowExpiry: a flow lets its replies in while it lives
// and not after. The flow goes to a host that is no endpoint (as flows to
// learned destinations will), so no adoption can stand in for it.
func TestUplinkIngressFlowExpiry(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))

	key := edgewardEwFlowKey{Family: 4, Proto: pkt.ProtoTCP, Sport: 50000, Dport: 443}
	key.Saddr, key.Daddr = addrWords(gw4), addrWords(inet4)
	reply := in4(inet4, pkt.ProtoTCP, tcpFlags(443, 50000, ack))

	for _, tc := range []struct {
		name    string
		expires uint64
		want    uint32
	}{
		{"live flow", ^uint64(0), xdpPass},
		{"expired flow", 1, xdpDrop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flow := edgewardEwFlow{Expires: tc.expires, State: 1}
			if err := l.objs.Flows.Put(&key, &flow); err != nil {
				t.Fatal(err)
			}
			if ret := runProg(t, l.objs.XDPUplink, reply); ret != tc.want {
				t.Errorf("xdp_uplink returned %d, want %d", ret, tc.want)
			}
		})
	}
}

// TestEgressICMPErrorAboutFlow: the gateway's own ICMP errors about a
// packet of an allowed flow leave (path MTU discovery for forwarded
// traffic); others do not.
func TestEgressICMPErrorAboutFlow(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))
	openFlows(t, l)

	arrived := pkt.IPv4(s3v4, gw4, pkt.ProtoTCP, pkt.IPv4Options{}, tcpFlags(443, 40000, ack))
	stranger := pkt.IPv4(inet4, gw4, pkt.ProtoTCP, pkt.IPv4Options{}, tcpFlags(443, 40000, ack))
	for _, tc := range []egressCase{
		{name: "frag needed about a flow", packet: pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoICMP, pkt.IPv4Options{}, icmpQuote(3, 4, arrived))), verdict: VerdictPass, reason: "icmp_error"},
		{name: "frag needed about no flow", packet: pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, inet4, pkt.ProtoICMP, pkt.IPv4Options{}, icmpQuote(3, 4, stranger))), verdict: VerdictDrop, reason: "no_rule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := readCounters(t, l)
			ret := runEgress(t, l, false, tc.packet)
			want := uint32(tcPass)
			if tc.verdict == VerdictDrop {
				want = tcDrop
			}
			if ret != want {
				t.Errorf("returned %#x, want %#x", ret, want)
			}
			assertOneCountAt(t, "tc_egress", before, readCounters(t, l), tc.verdict, tc.reason, len(tc.packet))
		})
	}
}

// TestUplinkIngressL3: the tc program for layer-3 uplinks judges alike.
func TestUplinkIngressL3(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))
	openFlows(t, l)

	reply := pkt.IPv4(s3v4, gw4, pkt.ProtoTCP, pkt.IPv4Options{}, tcpFlags(443, 40000, ack))
	if ret := runProg(t, l.objs.TCIngressL3, reply); ret != tcPass {
		t.Errorf("reply on a layer-3 uplink: returned %#x, want pass", ret)
	}
	stranger := pkt.IPv4(inet4, gw4, pkt.ProtoTCP, pkt.IPv4Options{}, tcpFlags(1234, 22, syn))
	if ret := runProg(t, l.objs.TCIngressL3, stranger); ret != tcDrop {
		t.Errorf("unsolicited syn on a layer-3 uplink: returned %#x, want drop", ret)
	}
}

func runProg(t *testing.T, prog *ebpf.Program, packet []byte) uint32 {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: packet})
	if err != nil {
		t.Fatalf("run %s on %d bytes: %v", prog, len(packet), err)
	}
	return ret
}
