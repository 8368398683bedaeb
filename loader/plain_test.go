package loader

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// TestPlainPathDecidesLikeTheFullJudge: the egress programs judge plain
// TCP and UDP inline (ew_judge_plain) and everything else with
// ew_judge_egress. A twin of each program loaded with ew_plain_path off
// sends every packet through ew_judge_egress; over random packets to
// endpoints, the proxy, learned and expired destinations, DNS with and
// without the guard's mark, link needs, fragments and strangers, both must
// return the same and count the same cell, in enforce and in audit mode.
func TestPlainPathDecidesLikeTheFullJudge(t *testing.T) {
	for _, mode := range []config.Mode{config.ModeEnforce, config.ModeAudit} {
		t.Run(string(mode), func(t *testing.T) {
			l := openTestLoader(t, plainTestPolicy(mode))
			learnForPlainTest(t, l)
			openLearnedFlowThenExpire(t, l)

			for _, l3 := range []bool{false, true} {
				name := "tc_egress_eth"
				if l3 {
					name = "tc_egress_l3"
				}
				real := l.objs.TCEgressEth
				if l3 {
					real = l.objs.TCEgressL3
				}
				twin := loadFullJudgeTwin(t, l, name)
				assertDifferentCode(t, real, twin)

				seed := uint64(time.Now().UnixNano())
				rng := rand.New(rand.NewPCG(seed, 2))
				for i := range 400 {
					p := randomEgressPacket(rng)
					packet := p.bytes(l3)
					ctx := skbContext{Mark: p.mark}
					gotRet, gotCell := runCounted(t, l, real, packet, ctx)
					wantRet, wantCell := runCounted(t, l, twin, packet, ctx)
					if gotRet != wantRet || gotCell != wantCell {
						t.Fatalf("%s, seed %d, packet %d (%s): inline path %#x %v, full judge %#x %v",
							name, seed, i, p, gotRet, gotCell, wantRet, wantCell)
					}
				}
			}
		})
	}
}

// plainTestPolicy is testPolicy with transparent DNS (the DNS gate), DNS
// names (learned destinations) and DNS over TCP allowed to wide-dns.
func plainTestPolicy(mode config.Mode) *config.Config {
	cfg := testPolicy(mode)
	cfg.DNS.Transparent = true
	cfg.DNS.Names = []config.Name{{Match: "*.partner.test", Ports: []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}}}}
	cfg.Endpoints[2].Ports = append(cfg.Endpoints[2].Ports, config.PortRange{Proto: config.ProtoTCP, First: 53, Last: 53})
	return cfg
}

var (
	learnedLive4    = a4("198.18.0.21")
	learnedExpired4 = a4("198.18.0.22")
	learnedLive6    = a4("2001:db8:18::21")
)

// learnForPlainTest writes a live and an expired learned destination.
func learnForPlainTest(t *testing.T, l *Loader) {
	t.Helper()
	https := []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}}
	err := l.Learn([]LearnedDest{
		{Addr: learnedLive4, Lifetime: time.Hour, Ports: https},
		{Addr: learnedLive6, Lifetime: time.Hour, Ports: https},
		{Addr: learnedExpired4, Lifetime: -time.Second, Ports: https},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The flow openLearnedFlowThenExpire opens to learnedExpired4.
const (
	expiredFlowSport = 8443
	expiredFlowDport = 443
)

// openLearnedFlowThenExpire lets a SYN to learnedExpired4 open a flow
// while its entry lives, then expires the entry: packets of that flow go
// on (ew_flow_continues), others to it are denied.
func openLearnedFlowThenExpire(t *testing.T, l *Loader) {
	t.Helper()
	https := []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}}
	relearn := func(lifetime time.Duration) {
		t.Helper()
		if err := l.Learn([]LearnedDest{{Addr: learnedExpired4, Lifetime: lifetime, Ports: https}}); err != nil {
			t.Fatal(err)
		}
	}
	relearn(time.Hour)
	syn := pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, learnedExpired4, pkt.ProtoTCP, pkt.IPv4Options{},
		tcpFlags(expiredFlowSport, expiredFlowDport, syn)))
	if ret := runEgress(t, l, false, syn); ret != tcPass {
		t.Fatalf("SYN to a live learned destination: returned %#x", ret)
	}
	relearn(-time.Second)
}

// assertDifferentCode fails unless the kernel holds different code for
// the two programs: with ew_plain_path off the verifier must have removed
// the plain path, or the comparison would test one path against itself.
func assertDifferentCode(t *testing.T, real, twin *ebpf.Program) {
	t.Helper()
	size := func(p *ebpf.Program) int {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		n, err := info.TranslatedSize()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if a, b := size(real), size(twin); a == b {
		t.Fatalf("the program and its twin without the plain path both have %d bytes of code", a)
	}
}

// loadFullJudgeTwin loads program name with ew_plain_path off, on the
// loader's maps.
func loadFullJudgeTwin(t *testing.T, l *Loader, name string) *ebpf.Program {
	t.Helper()
	maps, err := openPinnedMaps(l.pins.maps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeMaps(maps) })

	coll, err := loadTwin(name, maps, map[string]any{"ew_plain_path": uint8(0)})
	if err != nil {
		t.Fatalf("the plain path off: %v", err)
	}
	prog := coll.DetachProgram(name)
	coll.Close()
	t.Cleanup(func() { prog.Close() })
	return prog
}

// runCounted runs prog once and returns what it returned and the one
// counter cell that grew.
func runCounted(t *testing.T, l *Loader, prog *ebpf.Program, packet []byte, ctx skbContext) (uint32, cell) {
	t.Helper()
	before := readCounters(t, l)
	ret, err := prog.Run(&ebpf.RunOptions{Data: packet, Context: ctx})
	if err != nil {
		t.Fatal(err)
	}
	var grown []cell
	for k, v := range readCounters(t, l) {
		if v != before[k] {
			grown = append(grown, k)
		}
	}
	if len(grown) != 1 {
		t.Fatalf("%d counter cells grew, want 1: %v", len(grown), grown)
	}
	return ret, grown[0]
}

// egressPacket is a packet leaving on an uplink, as the random generator
// drew it.
type egressPacket struct {
	dst          netip.Addr
	proto        uint8
	sport, dport uint16
	flags        byte
	mark         uint32
	fragment     bool
	shape        packetShape
}

// packetShape is how a packet's headers are laid out: the plain path
// reads only shapePlain, and must leave every other shape to the full
// parser whole.
type packetShape int

const (
	shapePlain        packetShape = iota
	shapeVLAN                     // behind an 802.1Q tag (Ethernet only)
	shapeOptions                  // IPv4 options, or an IPv6 hop-by-hop header
	shapeTruncated                // the transport header cut short
	shapeShortTCP                 // a TCP data offset of four words
	shapeWrongVersion             // an IPv4 ethertype on an IPv6 header, or the reverse (Ethernet only)
	shapeBadNibble                // a version field that is neither 4 nor 6
	numShapes
)

func (p egressPacket) String() string {
	return fmt.Sprintf("%s proto %d %d->%d flags %#x mark %#x fragment %v shape %d",
		p.dst, p.proto, p.sport, p.dport, p.flags, p.mark, p.fragment, p.shape)
}

// randomEgressPacket draws destinations, ports and flags from the values
// the policy and the judge treat specially, and from strangers.
func randomEgressPacket(rng *rand.Rand) egressPacket {
	dsts := []netip.Addr{
		vpnPeer4, s3v4, s3v6, a4("10.1.2.3"), proxy4, inet4, inet6,
		learnedLive4, learnedLive6, learnedExpired4,
		a4("255.255.255.255"), a4("ff02::1:2"), a4("fe80::1"),
	}
	ports := []uint16{443, 53, 51820, 3128, 67, 68, 546, 547, 8443, uint16(rng.IntN(65536))}
	flags := []byte{ack, syn, syn | ack, fin | ack, rst, ack | 0x08}
	p := egressPacket{
		dst:      dsts[rng.IntN(len(dsts))],
		proto:    []uint8{pkt.ProtoTCP, pkt.ProtoUDP}[rng.IntN(2)],
		sport:    ports[rng.IntN(len(ports))],
		dport:    ports[rng.IntN(len(ports))],
		flags:    flags[rng.IntN(len(flags))],
		mark:     []uint32{0, GuardMark, GuardMark + 1}[rng.IntN(3)],
		fragment: rng.IntN(8) == 0,
	}
	if rng.IntN(2) == 0 {
		p.shape = packetShape(rng.IntN(int(numShapes)))
	}
	if p.dst == learnedExpired4 && rng.IntN(2) == 0 { // the flow that outlives its entry
		p.proto, p.sport, p.dport, p.fragment = pkt.ProtoTCP, expiredFlowSport, expiredFlowDport, false
	}
	if p.proto == pkt.ProtoUDP && rng.IntN(4) == 0 { // a DHCP client, often
		p.sport, p.dport = 68, 67
		if p.dst.Is6() {
			p.sport, p.dport = 546, 547
		}
	}
	return p
}

// bytes builds the packet, with an Ethernet header unless l3; a fragment
// is the first of an IPv4 datagram (more fragments follow).
func (p egressPacket) bytes(l3 bool) []byte {
	var l4 []byte
	if p.proto == pkt.ProtoTCP {
		l4 = tcpFlags(p.sport, p.dport, p.flags)
		if p.shape == shapeShortTCP {
			l4[12] = 4 << 4
		}
	} else {
		l4 = pkt.UDP(p.sport, p.dport, nil)
	}
	if p.shape == shapeTruncated {
		l4 = l4[:4]
	}

	var ip []byte
	etherType := uint16(pkt.EtherIPv4)
	options := pkt.IPv4Options{}
	if p.shape == shapeOptions {
		options.Options = []byte{1, 1, 1, 0}
	}
	switch {
	case p.dst.Is6() && p.shape == shapeOptions:
		ip, etherType = pkt.IPv6(gw6, p.dst, pkt.ProtoHopOpts, pkt.ExtHeader(p.proto, 0, l4)), pkt.EtherIPv6
	case p.dst.Is6():
		ip, etherType = pkt.IPv6(gw6, p.dst, p.proto, l4), pkt.EtherIPv6
	case p.fragment:
		options.ID, options.MoreFrags = uint16(p.sport), true
		ip = pkt.IPv4(gw4, p.dst, p.proto, options, l4)
	default:
		ip = pkt.IPv4(gw4, p.dst, p.proto, options, l4)
	}
	if p.shape == shapeBadNibble {
		ip[0] = ip[0]&0x0f | 0x50
	}
	if l3 {
		return ip
	}
	switch p.shape {
	case shapeVLAN:
		return pkt.Ether(pkt.Ether8021Q, pkt.VLAN(5, etherType, ip))
	case shapeWrongVersion:
		// BPF_PROG_TEST_RUN wants a whole IPv6 header behind an IPv6
		// ethertype: pad short IPv4 packets.
		etherType ^= pkt.EtherIPv4 ^ pkt.EtherIPv6
		ip = append(ip, make([]byte, 40)...)
	}
	return pkt.Ether(etherType, ip)
}
