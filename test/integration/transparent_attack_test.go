package integration

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/internal/pkt"
	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// Attacks on transparent DNS mode from hosts the policy does not trust.

// TestTransparentDNSForgedAnswerFromLAN: an OT host forges an "answer"
// from the upstream's address and port (10.20.0.2:53) for an allowed name
// and sends it through the gateway to any address in the VPC. The guard
// judges intercepted answers by their source address alone, never asking
// whether they come from the tunnel or answer a query it let through, so
// it learns the forged address: the OT host then connects to an address
// the upstream never gave. The data plane must not learn anything from a
// datagram that arrived on a LAN interface.
//
// DEFECT (fails today): 198.18.2.99 is learned and the connection passes.
func TestTransparentDNSForgedAnswerFromLAN(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.start()
	upstream := netip.MustParseAddrPort(upstreamDNS)

	for _, tc := range []struct {
		name   string
		to     string // where the forged answer is sent
		forged string // in answers_in, never given by the upstream
	}{
		// Through the tunnel to the VPC endpoint's UDP echo: the FORWARD
		// chain queues it for its source port 53.
		{"forwarded into the VPC", hostPort(sb.VPCEndpoint4, sb.UDPEchoPort), "198.18.2.99"},
		// To the guard's own listener: xdp_lan passes it as a service, the
		// INPUT chain queues it.
		{"to the gateway's DNS port", hostPort(sb.GatewayLAN4, 53), "198.18.2.98"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := hostPort(tc.forged, sb.LearnedPort)
			if err := g.sb.EchoTCP(sb.OT, target, time.Second); err == nil {
				t.Fatalf("%s reachable before any answer", target)
			}
			before := g.interceptCounts()["answer/allowed"]

			name := "forged-" + randomLabel() + ".partner.test."
			to := netip.MustParseAddrPort(tc.to)
			if err := rawUDP4(g.sb, sb.OT, upstream, to, dnsAnswer(t, name, 3600, tc.forged)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)

			if err := g.sb.EchoTCP(sb.OT, target, 2*time.Second); err == nil {
				t.Errorf("an answer the OT host forged from %s taught the data plane %s: the OT host reached %s", upstreamDNS, tc.forged, target)
			}
			if n := g.interceptCounts()["answer/allowed"] - before; n != 0 {
				t.Errorf("the guard accepted %d intercepted answers that arrived on the LAN from a spoofed upstream", n)
			}
			g.checkNeverReached(t, name)
		})
	}
}

// dnsAnswer is a response for name (type A) with one A record per address.
func dnsAnswer(t *testing.T, name string, ttl uint32, addrs ...string) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Response, m.RecursionAvailable = true, true
	for _, a := range addrs {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   net.ParseIP(a),
		})
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawUDP4 sends one IPv4 UDP datagram with any source address from host h
// through a raw socket (the kernel fills in the IP checksum; the UDP
// checksum stays 0, which IPv4 allows).
func rawUDP4(s *sb.Sandbox, h sb.Host, src, dst netip.AddrPort, payload []byte) error {
	packet := pkt.IPv4(src.Addr(), dst.Addr(), pkt.ProtoUDP, pkt.IPv4Options{},
		pkt.UDP(src.Port(), dst.Port(), payload))
	return rawIPv4(s, h, dst.Addr(), packet)
}

// rawIPv4 sends a whole IPv4 packet from host h.
func rawIPv4(s *sb.Sandbox, h sb.Host, dst netip.Addr, packet []byte) error {
	return s.Do(h, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, packet, 0, &unix.SockaddrInet4{Addr: dst.As4()})
	})
}
