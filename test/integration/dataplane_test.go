package integration

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// TestLANHook: XDP on the LAN interface drops what OT hosts may not send
// before the stack sees it, passes what goes into the tunnel, and lets OT
// hosts reach only the gateway services listed.
func TestLANHook(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()
	g.listenTCP(sb.Gateway, sb.Addr(sb.GatewayLAN4, 22), echo)
	g.listenTCP(sb.Gateway, sb.Addr(sb.GatewayLAN4, 2222), echo)

	before := g.counters()
	g.expect([]probe{
		{"OT to the internet host", sb.OT, "https", httpsURL(sb.InternetHost4), false},
		{"OT to the VPC through the tunnel", sb.OT, "https", httpsURL(sb.VPCEndpoint4), true},
		{"OT to the gateway's ssh (listed)", sb.OT, "tcp-echo", sb.Addr(sb.GatewayLAN4, 22), true},
		{"OT to the gateway's port 2222 (not listed)", sb.OT, "tcp-echo", sb.Addr(sb.GatewayLAN4, 2222), false},
	})
	after := g.counters()

	for _, key := range []string{"xdp_lan/drop/no_rule", "xdp_lan/pass/vpn", "xdp_lan/pass/service", "xdp_lan/drop/not_a_service"} {
		if after[key] <= before[key] {
			t.Errorf("counter %s did not grow: %d -> %d", key, before[key], after[key])
		}
	}
}

// TestUplinkIngress: nothing unsolicited comes in from the uplink, replies
// of allowed connections do.
func TestUplinkIngress(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()
	g.listenTCP(sb.Gateway, sb.Addr(sb.GatewayWAN4, 2200), echo)
	udp := g.countUDP(sb.Gateway, sb.Addr(sb.GatewayWAN4, 5300))

	before := g.counters()
	g.expect([]probe{
		{"unsolicited TCP SYN from the internet host", sb.WAN, "tcp-echo", sb.Addr(sb.GatewayWAN4, 2200), false},
		{"reply of an allowed connection", sb.Gateway, "https", httpsURL(sb.EndpointHost4), true},
	})
	g.sendUDP(sb.WAN, []string{sb.Addr(sb.GatewayWAN4, 5300)}, 20, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	after := g.counters()

	if n := udp.count(); n != 0 {
		t.Errorf("%d unsolicited UDP datagrams reached the gateway, want 0", n)
	}
	if got := after["uplink_ingress/drop/unsolicited"] - before["uplink_ingress/drop/unsolicited"]; got < 21 {
		t.Errorf("uplink_ingress/drop/unsolicited grew by %d, want at least 21 (1 SYN, 20 datagrams)", got)
	}
	if after["uplink_ingress/pass/flow"] <= before["uplink_ingress/pass/flow"] {
		t.Error("no reply counted under uplink_ingress/pass/flow")
	}
}

// TestPathMTU: large transfers through a path with a smaller MTU complete,
// because ICMP "fragmentation needed" about allowed flows passes both the
// uplink ingress hook (the gateway sends big) and egress (the gateway
// forwards big towards a LAN with a smaller MTU).
func TestPathMTU(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Extra: []demopolicy.Endpoint{
		{Name: "bulk-vpc", To: []string{"203.0.113.10/32"}, Ports: []string{"tcp/9443"}},
		{Name: "bulk-partner", To: []string{"198.18.0.20/32"}, Ports: []string{"tcp/9443"}},
	}})
	g.start()
	const size = 512 << 10

	t.Run("gateway sends through a 1280-byte hop", func(t *testing.T) {
		// Only the router's side is small: both ends announce an MSS
		// for 1500 bytes, so only path MTU discovery can save the
		// transfer.
		g.ipIn(sb.WAN, "link", "set", sb.WANCloudIface, "mtu", "1280")
		g.listenTCP(sb.VPC, sb.Addr(sb.VPNPeer4, 9443), sink)

		before := g.counters()
		got, err := g.upload(sb.Gateway, sb.Addr(sb.VPNPeer4, 9443), size)
		if err != nil || got != size {
			t.Fatalf("upload through the small hop: %d of %d bytes arrived: %v", got, size, err)
		}
		if g.counters()["uplink_ingress/pass/icmp_error"] <= before["uplink_ingress/pass/icmp_error"] {
			t.Error("no ICMP error counted under uplink_ingress/pass/icmp_error")
		}
	})

	t.Run("gateway forwards into a 1280-byte LAN", func(t *testing.T) {
		// The OT host keeps 1500 and announces an MSS to match.
		g.ipIn(sb.Gateway, "link", "set", sb.GatewayLANIface, "mtu", "1280")
		g.listenTCP(sb.WAN, sb.Addr(sb.EndpointHost4, 9443), source(size))

		before := g.counters()
		got, err := g.download(sb.OT, sb.Addr(sb.EndpointHost4, 9443))
		if err != nil || got != size {
			t.Fatalf("download into the small LAN: %d of %d bytes arrived: %v", got, size, err)
		}
		if g.counters()["tc_egress/pass/icmp_error"] <= before["tc_egress/pass/icmp_error"] {
			t.Error("no ICMP error counted under tc_egress/pass/icmp_error")
		}
	})
}

// upload sends size bytes to a sink and returns how many it confirmed.
func (g *gateway) upload(h sb.Host, addr string, size int) (int, error) {
	conn, err := g.dialTCP(h, addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(make([]byte, size)); err != nil {
		return 0, err
	}
	conn.(*net.TCPConn).CloseWrite()
	var n uint64
	err = binary.Read(conn, binary.BigEndian, &n)
	return int(n), err
}

// download reads everything a source sends.
func (g *gateway) download(h sb.Host, addr string) (int, error) {
	conn, err := g.dialTCP(h, addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	return int(n), err
}

// TestLockout: ignored interfaces are never enforced, and an invalid
// config at start touches nothing.
func TestLockout(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Ignore: []string{"mgmt0"}})
	g.ipIn(sb.Gateway, "link", "add", "mgmt0", "type", "veth", "peer", "name", "mgmt1")
	g.ipIn(sb.Gateway, "link", "set", "mgmt0", "up")

	t.Run("invalid config at start", func(t *testing.T) {
		bad := strings.Replace(g.cfgPath, "edgeward.yaml", "bad.yaml", 1)
		writeFile(t, bad, "mode: enforce\nendpoints: [{name: x, to: [10.0.0.1/33], ports: [tcp/1]}]\n")
		out, err := g.cli("run", "-c", bad)
		if code := exitCode(err); code != 2 {
			t.Fatalf("run with an invalid config: exit %d, want 2:\n%s", code, out)
		}
		if a := g.attachments(); len(a) > 0 {
			t.Errorf("attachments after a refused start: %+v", a)
		}
	})

	g.start()
	for _, a := range g.attachments() {
		if a.Name == "mgmt0" {
			t.Errorf("ignored interface mgmt0 carries %s", a.Hook)
		}
	}
	if n := tcxEgressPrograms(t, g, "mgmt0"); n != 0 {
		t.Errorf("mgmt0 carries %d tcx programs, want 0", n)
	}

	// Reload with the uplink ignored: our programs leave it.
	rewritePolicy(t, g, demopolicy.Params{Ignore: []string{"mgmt0", sb.GatewayWANIface}})
	if out, err := g.cli("reload", "-c", g.cfgPath); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if n := tcxEgressPrograms(t, g, sb.GatewayWANIface); n != 0 {
		t.Errorf("wan0 still carries %d tcx programs after it became ignored", n)
	}
}
