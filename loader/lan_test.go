package loader

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// xdpMD is struct xdp_md, the context BPF_PROG_TEST_RUN hands an XDP
// program.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// lanRouter is a private network namespace laid out like a gateway, for
// the FIB lookups of xdp_lan.
type lanRouter struct {
	ns      netns.NsHandle
	h       *netlink.Handle
	ifindex map[string]int
}

// newLANRouter builds, in a new network namespace entered by the calling
// (locked) thread, lan0 10.10.0.1/24, wan0 198.51.100.2/24 with the
// default route, vpn0 towards 10.20.9.0/24, lan2 10.30.0.1/24 and a
// blackhole route to 203.0.113.99, with forwarding on.
func newLANRouter(t *testing.T) *lanRouter {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		netns.Set(orig)
		orig.Close()
		ns.Close()
		runtime.UnlockOSThread()
	})

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	r := &lanRouter{ns: ns, h: h, ifindex: map[string]int{}}
	r.setup(t)
	return r
}

func (r *lanRouter) setup(t *testing.T) {
	t.Helper()
	lo, err := r.h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	must(t, r.h.LinkSetUp(lo))

	r.veth(t, "lan0", "10.10.0.1/24")
	r.veth(t, "wan0", "198.51.100.2/24")
	r.veth(t, "vpn0", "10.99.0.1/24")
	r.veth(t, "lan2", "10.30.0.1/24")
	must(t, os.WriteFile("/proc/sys/net/ipv4/conf/all/forwarding", []byte("1"), 0o644))

	must(t, r.h.RouteAdd(&netlink.Route{Gw: net.ParseIP("198.51.100.1"), LinkIndex: r.ifindex["wan0"]}))
	_, vpc, _ := net.ParseCIDR("10.20.9.0/24")
	must(t, r.h.RouteAdd(&netlink.Route{Dst: vpc, LinkIndex: r.ifindex["vpn0"]}))
	_, hole, _ := net.ParseCIDR("203.0.113.99/32")
	must(t, r.h.RouteAdd(&netlink.Route{Dst: hole, Type: unixRTNBlackhole}))
}

// unixRTNBlackhole is RTN_BLACKHOLE.
const unixRTNBlackhole = 6

// veth adds a veth pair name/name+"p", addresses name and brings both up.
func (r *lanRouter) veth(t *testing.T, name, cidr string) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	must(t, r.h.LinkAdd(v))
	addr, err := netlink.ParseAddr(cidr)
	must(t, err)
	must(t, r.h.AddrAdd(v, addr))
	must(t, r.h.LinkSetUp(v))
	peer, err := r.h.LinkByName(name + "p")
	must(t, err)
	must(t, r.h.LinkSetUp(peer))

	link, err := r.h.LinkByName(name)
	must(t, err)
	r.ifindex[name] = link.Attrs().Index
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func lanPolicy() *config.Config {
	cfg := testPolicy(config.ModeEnforce)
	cfg.Interfaces.LANServices = []config.PortRange{{Proto: config.ProtoTCP, First: 22, Last: 22}}
	cfg.DNS.Listen = []netip.AddrPort{netip.MustParseAddrPort("10.10.0.1:53")}
	return cfg
}

var ot4 = a4("10.10.0.2")

func fromOT(dst netip.Addr, proto uint8, l4 []byte) []byte {
	return pkt.Ether(pkt.EtherIPv4, pkt.IPv4(ot4, dst, proto, pkt.IPv4Options{}, l4))
}

// TestLANVerdicts runs xdp_lan on packets from an OT host, each judged by
// where the FIB of a gateway-like namespace would route it.
func TestLANVerdicts(t *testing.T) {
	l := openTestLoader(t, lanPolicy())
	r := newLANRouter(t)
	for name, role := range map[string]Role{"lan0": RoleLAN, "wan0": RoleUplink, "vpn0": RoleVPN, "lan2": RoleLAN} {
		must(t, l.SetRole(r.ifindex[name], role))
	}

	for _, tc := range []struct {
		name    string
		packet  []byte
		verdict Verdict
		reason  string
	}{
		{"to an endpoint over the uplink", fromOT(s3v4, pkt.ProtoTCP, pkt.TCP(40000, 443)), VerdictPass, "endpoint"},
		{"to an endpoint on another port", fromOT(s3v4, pkt.ProtoTCP, pkt.TCP(40000, 80)), VerdictDrop, "no_rule"},
		{"to the proxy", fromOT(proxy4, pkt.ProtoTCP, pkt.TCP(40000, 3128)), VerdictPass, "proxy"},
		{"to the internet", fromOT(inet4, pkt.ProtoTCP, pkt.TCP(40000, 443)), VerdictDrop, "no_rule"},
		{"icmp to the internet", fromOT(inet4, pkt.ProtoICMP, pkt.ICMP(8, 0)), VerdictDrop, "no_rule"},
		{"into the vpn", fromOT(a4("10.20.9.9"), pkt.ProtoTCP, pkt.TCP(40000, 8883)), VerdictPass, "vpn"},
		{"to the gateway's ssh (listed)", fromOT(a4("10.10.0.1"), pkt.ProtoTCP, pkt.TCP(40000, 22)), VerdictPass, "service"},
		{"to the gateway's dns", fromOT(a4("10.10.0.1"), pkt.ProtoUDP, pkt.UDP(40000, 53, nil)), VerdictPass, "service"},
		{"to the gateway's telnet (not listed)", fromOT(a4("10.10.0.1"), pkt.ProtoTCP, pkt.TCP(40000, 23)), VerdictDrop, "not_a_service"},
		{"to the gateway's uplink address", fromOT(gw4, pkt.ProtoTCP, pkt.TCP(40000, 22)), VerdictPass, "service"},
		{"to another LAN", fromOT(a4("10.30.0.7"), pkt.ProtoTCP, pkt.TCP(40000, 502)), VerdictDrop, "not_routable"},
		{"to a blackhole", fromOT(a4("203.0.113.99"), pkt.ProtoTCP, pkt.TCP(40000, 443)), VerdictDrop, "no_route"},
		{"arp", pkt.Ether(pkt.EtherARP, pkt.ARPRequest(ot4, a4("10.10.0.1"))), VerdictPass, "arp"},
		{"dhcp discover", fromOT(a4("255.255.255.255"), pkt.ProtoUDP, pkt.UDP(68, 67, nil)), VerdictPass, "dhcp"},
		{"vlan-tagged to the internet", pkt.Ether(pkt.Ether8021Q, pkt.VLAN(5, pkt.EtherIPv4, pkt.IPv4(ot4, inet4, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(1, 443)))), VerdictDrop, "no_rule"},
		{"malformed", pkt.Ether(pkt.Ether8021Q, pkt.VLAN(5, pkt.EtherIPv4, []byte{0x45})), VerdictDrop, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.expectXDP(t, l, l.objs.XDPLAN, "lan0", "xdp_lan", tc.packet, tc.verdict, tc.reason)
		})
	}
}

// expectXDP runs an XDP program on packet received on iface and checks
// its return value and that exactly the (hook, verdict, reason) counter
// grew by one.
func (r *lanRouter) expectXDP(t *testing.T, l *Loader, prog *ebpf.Program, iface, hook string, packet []byte, verdict Verdict, reason string) {
	t.Helper()
	before := readCounters(t, l)
	ret := r.runXDP(t, prog, iface, packet)

	want := uint32(xdpPass)
	if verdict == VerdictDrop {
		want = xdpDrop
	}
	if ret != want {
		t.Errorf("%s returned %d, want %d (%s)", prog, ret, want, verdict)
	}
	assertOneCountAt(t, hook, before, readCounters(t, l), verdict, reason, len(packet))
}

// runXDP runs an XDP program on a packet received on the interface called
// name, in the router's namespace: the FIB lookup sees the namespace of the
// thread that runs the program, and a subtest runs on a thread of its own.
func (r *lanRouter) runXDP(t *testing.T, prog *ebpf.Program, name string, packet []byte) uint32 {
	t.Helper()

	ctx := xdpMD{DataEnd: uint32(len(packet)), IngressIfindex: uint32(r.ifindex[name])}
	var ret uint32
	var err error
	r.do(t, func() {
		ret, err = prog.Run(&ebpf.RunOptions{Data: packet, Context: ctx})
	})
	if err != nil {
		t.Fatalf("run %s on %d bytes: %v", prog, len(packet), err)
	}
	return ret
}

// TestUplinkIngressAdoption: a packet from an endpoint's own port that
// belongs to no recorded flow comes in only when a socket of the gateway
// waits for it: an established TCP connection of its four-tuple (open
// before enforcement started), or a UDP socket on its port (the VPN
// transport).
func TestUplinkIngressAdoption(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))
	r := newLANRouter(t)
	lo, err := r.h.LinkByName("lo")
	must(t, err)
	addr, _ := netlink.ParseAddr(s3v4.String() + "/32")
	must(t, r.h.AddrAdd(lo, addr))

	// A TCP connection from the gateway to the endpoint, and a UDP socket
	// on the tunnel's port, all in the router's namespace.
	var client net.Conn
	r.do(t, func() {
		ln, err := net.Listen("tcp", net.JoinHostPort(s3v4.String(), "443"))
		must(t, err)
		t.Cleanup(func() { ln.Close() })
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(gw4.String())}}
		client, err = d.Dial("tcp", ln.Addr().String())
		must(t, err)
		t.Cleanup(func() { client.Close() })
		pc, err := net.ListenPacket("udp", net.JoinHostPort(gw4.String(), "51820"))
		must(t, err)
		t.Cleanup(func() { pc.Close() })
	})
	port := uint16(client.LocalAddr().(*net.TCPAddr).Port)

	for _, tc := range []struct {
		name    string
		packet  []byte
		verdict Verdict
		reason  string
	}{
		{"ack of the open connection", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, port, ack)), VerdictPass, "flow_adopted"},
		{"its next packet", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, port, ack)), VerdictPass, "flow"},
		{"ack to a port without a connection", in4(s3v4, pkt.ProtoTCP, tcpFlags(443, port+1, ack)), VerdictDrop, "unsolicited"},
		{"udp from the vpn peer to the tunnel's socket", in4(vpnPeer4, pkt.ProtoUDP, pkt.UDP(51820, 51820, []byte("wg"))), VerdictPass, "peer"},
		{"udp from the vpn peer to another port", in4(vpnPeer4, pkt.ProtoUDP, pkt.UDP(51820, 51821, []byte("x"))), VerdictDrop, "unsolicited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.expectXDP(t, l, l.objs.XDPUplink, "wan0", "uplink_ingress", tc.packet, tc.verdict, tc.reason)
		})
	}
}

// do runs fn on a thread in the router's namespace.
func (r *lanRouter) do(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	must(t, err)
	defer orig.Close()
	must(t, netns.Set(r.ns))
	defer netns.Set(orig)
	fn()
}
