package integration

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// TestLinkNeedsStayOnLink: what an interface needs to work (DHCP, neighbour
// discovery) passes only on the link. Packets shaped like it but sent to
// an internet host, from the gateway or from the OT host, do not leave.
func TestLinkNeedsStayOnLink(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()

	dhcp := g.countUDP(sb.WAN, sb.Addr(sb.InternetHost4, 67))
	dhcp6 := g.countUDP(sb.WAN, sb.Addr(sb.InternetHost6, 547))
	for _, from := range []sb.Host{sb.Gateway, sb.OT} {
		g.sendUDPFrom(from, ":68", sb.Addr(sb.InternetHost4, 67), 5)
		g.sendUDPFrom(from, "[::]:546", sb.Addr(sb.InternetHost6, 547), 5)
	}
	nd := g.countICMPv6(sb.WAN, sb.InternetHost6)
	g.sendNeighbourSolicitation(sb.Gateway, sb.InternetHost6)
	time.Sleep(300 * time.Millisecond)

	if n := dhcp.count(); n != 0 {
		t.Errorf("%d DHCP-shaped datagrams reached the internet host", n)
	}
	if n := dhcp6.count(); n != 0 {
		t.Errorf("%d DHCPv6-shaped datagrams reached the internet host", n)
	}
	if n := nd.count(); n != 0 {
		t.Errorf("%d neighbour solicitations reached the internet host", n)
	}
}

// sendUDPFrom sends n numbered datagrams from a fixed local address.
func (g *gateway) sendUDPFrom(h sb.Host, local, dst string, n int) {
	g.t.Helper()
	err := g.sb.Do(h, func() error {
		laddr, err := net.ResolveUDPAddr("udp", local)
		if err != nil {
			return err
		}
		raddr, err := net.ResolveUDPAddr("udp", dst)
		if err != nil {
			return err
		}
		conn, err := net.DialUDP("udp", laddr, raddr)
		if err != nil {
			return err
		}
		defer conn.Close()
		for seq := range n {
			conn.Write([]byte{0, 0, 0, byte(seq), 'x'})
		}
		return nil
	})
	if err != nil {
		g.t.Fatal(err)
	}
}

// countICMPv6 counts neighbour solicitations that arrive at addr in host h.
func (g *gateway) countICMPv6(h sb.Host, addr string) *udpCounter {
	g.t.Helper()
	var pc *icmp.PacketConn
	err := g.sb.Do(h, func() error {
		var err error
		pc, err = icmp.ListenPacket("ip6:ipv6-icmp", addr)
		return err
	})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { pc.Close() })

	c := &udpCounter{seen: map[uint32]bool{}}
	go func() {
		buf := make([]byte, 1500)
		for i := uint32(0); ; i++ {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n > 0 && ipv6.ICMPType(buf[0]) == ipv6.ICMPTypeNeighborSolicitation {
				c.mu.Lock()
				c.seen[i] = true
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// sendNeighbourSolicitation sends a neighbour solicitation carrying data to
// a routed (not on-link) address.
func (g *gateway) sendNeighbourSolicitation(h sb.Host, dst string) {
	g.t.Helper()
	err := g.sb.Do(h, func() error {
		pc, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		defer pc.Close()
		msg := icmp.Message{Type: ipv6.ICMPTypeNeighborSolicitation, Body: &icmp.RawBody{Data: make([]byte, 200)}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		for range 3 {
			_, err := pc.WriteTo(b, &net.IPAddr{IP: net.ParseIP(dst)})
			if err != nil && !isLocalDrop(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		g.t.Fatal(err)
	}
}

// isLocalDrop tells whether a send failed because egress dropped the
// packet: the kernel reports the drop to a raw socket as ENOBUFS (or
// EPERM).
func isLocalDrop(err error) bool {
	return errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EPERM)
}
