package loader

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// TestEgressDNSGate: with transparent DNS, DNS to port 53 leaves an uplink
// only with the guard's mark, even toward an endpoint that allows it;
// other traffic and other ports are not affected, and without transparent
// DNS the mark does not matter.
func TestEgressDNSGate(t *testing.T) {
	dns4 := udp4(s3v4, 40000, 53) // s3v4 is in wide-dns: udp/53 (and here tcp/53) on 10.0.0.0/8
	tcpDNS := pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, s3v4, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(40000, 53)))
	https := tcp4(s3v4, 443)

	for _, tc := range []struct {
		name        string
		transparent bool
		packet      []byte
		mark        uint32
		verdict     Verdict
		reason      string
	}{
		{"unmarked udp dns", true, dns4, 0, VerdictDrop, "dns_unguarded"},
		{"unmarked tcp dns", true, tcpDNS, 0, VerdictDrop, "dns_unguarded"},
		{"guard's udp dns", true, dns4, GuardMark, VerdictPass, "endpoint"},
		{"guard's mark among other bits", true, dns4, 0x00120000 | GuardMark, VerdictPass, "endpoint"},
		{"another mark", true, dns4, GuardMark + 1, VerdictDrop, "dns_unguarded"},
		{"not dns", true, https, 0, VerdictPass, "endpoint"},
		{"without transparent dns", false, dns4, 0, VerdictPass, "endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testPolicy(config.ModeEnforce)
			cfg.DNS.Transparent = tc.transparent
			cfg.Endpoints[2].Ports = append(cfg.Endpoints[2].Ports, config.PortRange{Proto: config.ProtoTCP, First: 53, Last: 53})
			l := openTestLoader(t, cfg)

			before := readCounters(t, l)
			ret, err := l.objs.TCEgressEth.Run(&ebpf.RunOptions{Data: tc.packet, Context: skbContext{Mark: tc.mark}})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[Verdict]uint32{VerdictPass: tcPass, VerdictDrop: tcDrop}[tc.verdict]; ret != want {
				t.Errorf("returned %#x, want %s", ret, tc.verdict)
			}
			assertOneCount(t, before, readCounters(t, l), tc.verdict, tc.reason, len(tc.packet))
		})
	}
}
