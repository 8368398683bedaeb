package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/florianl/go-nfqueue/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/config"
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

// evilZone is a second upstream zone that TestTransparentDNSAnswerReleasedWhole
// and others add to the demo policy: "*.evil.test", answers in
// 198.18.0.0/16, opening tcp/8883, resolved by a server the test runs at
// evilUpstream4 in the VPC.
const (
	evilUpstream4 = "10.20.0.53"
	evilUpstream6 = "2001:db8:20::53"
)

// addEvilZone rewrites g's policy with the zone evil.test (upstream
// servers given as ip:port) and the name "*.evil.test"; call it before
// start.
func (g *gateway) addEvilZone(servers ...string) {
	g.t.Helper()
	data, err := os.ReadFile(g.cfgPath)
	if err != nil {
		g.t.Fatal(err)
	}
	text := string(data)
	const ups = "      servers: [10.20.0.2:53]\n"
	const ttl = "  ttl: {"
	if !strings.Contains(text, ups) || !strings.Contains(text, ttl) {
		g.t.Fatalf("the demo policy changed shape:\n%s", text)
	}
	text = strings.Replace(text, ups, ups+"    - zones: [evil.test]\n      servers: ["+joinQuotedList(servers)+"]\n", 1)
	text = strings.Replace(text, ttl, "    - match: \"*.evil.test\"\n      ports: [tcp/8883]\n      answers_in: [198.18.0.0/16]\n"+ttl, 1)
	if err := os.WriteFile(g.cfgPath, []byte(text), 0o600); err != nil {
		g.t.Fatal(err)
	}
	if g.cfg, err = config.Load(g.cfgPath); err != nil {
		g.t.Fatal(err)
	}
}

func joinQuotedList(items []string) string {
	var q []string
	for _, it := range items {
		q = append(q, strconv.Quote(it))
	}
	return strings.Join(q, ", ")
}

// fakeResolver serves handler over UDP on addr:53 in the VPC (the address
// is added to the VPC's lo) and records every question name it receives.
type fakeResolver struct {
	mu    sync.Mutex
	names []string
	ids   []uint16 // message IDs of everything received, in order
}

func (f *fakeResolver) gotID(id uint16) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.ids, id)
}

func (f *fakeResolver) seen(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.names, strings.ToLower(dns.Fqdn(name)))
}

func (f *fakeResolver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.names)
}

func (g *gateway) startFakeResolver(addr string, handler dns.HandlerFunc) *fakeResolver {
	g.t.Helper()
	prefix := addr + "/32"
	if strings.Contains(addr, ":") {
		prefix = addr + "/128"
	}
	if out, err := g.sbOutput(sb.VPC, "ip", "addr", "add", prefix, "dev", "lo", "nodad"); err != nil && !strings.Contains(out+err.Error(), "exists") {
		g.t.Fatal(err)
	}
	var pc net.PacketConn
	err := g.sb.Do(sb.VPC, func() error {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(addr, "53"))
		return err
	})
	if err != nil {
		g.t.Fatal(err)
	}
	f := &fakeResolver{}
	// Every message that parses reaches the handler, whatever its header
	// says, so that the test sees what got through.
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	srv := &dns.Server{PacketConn: recordingConn{pc, f}, MsgAcceptFunc: accept, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		f.mu.Lock()
		for _, q := range req.Question {
			f.names = append(f.names, strings.ToLower(q.Name))
		}
		f.mu.Unlock()
		handler(w, req)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	g.t.Cleanup(func() { srv.Shutdown() })
	return f
}

// recordingConn records the ID of every datagram read, parsable or not.
type recordingConn struct {
	net.PacketConn
	f *fakeResolver
}

func (c recordingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if n >= 2 {
		c.f.mu.Lock()
		c.f.ids = append(c.f.ids, uint16(b[0])<<8|uint16(b[1]))
		c.f.mu.Unlock()
	}
	return n, addr, err
}

// evilAnswers answers the names TestTransparentDNSAnswerReleasedWhole asks.
func evilAnswers(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0].Name
	a := func(name, addr string) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP(addr)}
	}
	label, _, _ := strings.Cut(strings.ToLower(q), ".")
	switch label {
	case "rebind":
		// An address of the OT LAN for the query name itself, ahead of a
		// CNAME whose target has an address in answers_in. Stub resolvers
		// (glibc) take both; the guard follows the CNAME and pins only the
		// target's.
		resp.Answer = []dns.RR{
			a(q, "10.10.0.7"),
			&dns.CNAME{Hdr: dns.RR_Header{Name: q, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: "target.evil.test."},
			a("target.evil.test.", "198.18.1.9"),
		}
	case "glue":
		// An address outside answers_in for the query name in the
		// additional section.
		resp.Answer = []dns.RR{a(q, "198.18.1.10")}
		resp.Extra = []dns.RR{a(q, "192.0.2.80")}
	case "many":
		// 1000 addresses, all in answers_in: 16 KB, IPv4 fragments.
		for i := range 1000 {
			resp.Answer = append(resp.Answer, a(q, fmt.Sprintf("198.18.%d.%d", 1+i/250, 1+i%250)))
		}
		resp.Compress = true
	case "tc":
		resp.Truncated = true
		resp.Answer = []dns.RR{a(q, "198.18.1.11")}
	case "big":
		// An answer in answers_in, asked with a query large enough to be
		// fragmented (see TestTransparentDNSFragments).
		resp.Answer = []dns.RR{a(q, "198.18.1.12")}
	default:
		if strings.HasPrefix(label, "h") {
			resp.Answer = []dns.RR{a(q, "198.18.1.13")}
		} else {
			resp.Rcode = dns.RcodeNameError
		}
	}
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(opt.UDPSize(), false)
	}
	w.WriteMsg(resp)
}

// exchange sends m from host h to server over UDP and waits for the answer.
func exchange(s *sb.Sandbox, h sb.Host, server string, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	var resp *dns.Msg
	err := s.Do(h, func() error {
		c := &dns.Client{Timeout: timeout, UDPSize: dns.MaxMsgSize}
		var err error
		resp, _, err = c.Exchange(m, server)
		return err
	})
	return resp, err
}

// addrsOf lists every A record's address in all sections of resp.
func addrsOf(resp *dns.Msg) []string {
	var out []string
	for _, sec := range [][]dns.RR{resp.Answer, resp.Ns, resp.Extra} {
		for _, rr := range sec {
			if a, ok := rr.(*dns.A); ok {
				out = append(out, a.A.String())
			}
		}
	}
	return out
}

// TestTransparentDNSAnswerReleasedWhole: the guard judges part of an
// intercepted answer (the CNAME chain of the question and the records of
// its type at the chain's end, at most 64 of them) and then releases the
// whole datagram. dnsguard/README lists this among its known limitations
// ("records off the CNAME chain and every address beyond the per-pattern
// cap"), arguing that only what the guard learned is allowed. That holds
// for traffic through the gateway, not for an address of the OT LAN: the
// spec rejects and alarms "a public name that resolves into private or OT
// ranges (rebinding)", and a stub resolver (glibc) takes an A record of
// the query name that precedes its CNAME.
func TestTransparentDNSAnswerReleasedWhole(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.addEvilZone(hostPort(evilUpstream4, 53))
	for _, p := range []string{"198.18.3.0/24", "198.18.4.0/24"} {
		if _, err := g.sbOutput(sb.WAN, "ip", "route", "add", "local", p, "dev", "lo"); err != nil {
			t.Fatal(err)
		}
	}
	g.start()
	g.startFakeResolver(evilUpstream4, evilAnswers)
	server := hostPort(evilUpstream4, 53)

	ask := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.SetEdns0(dns.MaxMsgSize, false)
		return m
	}

	t.Run("rebind", func(t *testing.T) {
		own, err := g.sb.Resolve(sb.OT, "rebind.evil.test")
		if err != nil || slices.Contains(addrsOf(own), "10.10.0.7") {
			t.Errorf("through the guard's listener: %v %v", addrsOf(own), err)
		}
		resp, err := exchange(g.sb, sb.OT, server, ask("rebind.evil.test."), 2*time.Second)
		if err == nil && slices.Contains(addrsOf(resp), "10.10.0.7") {
			t.Errorf("intercepted answer released with 10.10.0.7 (OT LAN, outside answers_in) for the query name: %v", addrsOf(resp))
		}
	})

	t.Run("glue", func(t *testing.T) {
		resp, err := exchange(g.sb, sb.OT, server, ask("glue.evil.test."), 2*time.Second)
		if err == nil && slices.Contains(addrsOf(resp), "192.0.2.80") {
			t.Logf("documented limitation: intercepted answer released with 192.0.2.80 (outside answers_in) in its additional section: %v", addrsOf(resp))
		}
	})

	t.Run("many", func(t *testing.T) {
		resp, err := exchange(g.sb, sb.OT, server, ask("many.evil.test."), 3*time.Second)
		if err != nil {
			t.Logf("1000 records: no answer (%v)", err)
			return
		}
		addrs := addrsOf(resp)
		t.Logf("1000 records: the OT host got %d addresses (the 16 KB answer was reassembled)", len(addrs))
		var unreachable []string
		for _, a := range []string{addrs[0], addrs[63], addrs[64], addrs[len(addrs)-1]} {
			if err := g.sb.EchoTCP(sb.OT, hostPort(a, sb.LearnedPort), time.Second); err != nil {
				unreachable = append(unreachable, a)
			}
		}
		if len(unreachable) > 0 {
			t.Logf("documented limitation: addresses of a released answer the data plane did not learn: %v", unreachable)
		}
	})

	t.Run("truncated", func(t *testing.T) {
		if resp, err := exchange(g.sb, sb.OT, server, ask("tc.evil.test."), time.Second); err == nil {
			t.Errorf("a truncated answer passed: %v", resp)
		}
	})
}

// TestTransparentDNSQueryShapes: DNS messages of odd shapes, from the OT
// host and from a process on the gateway, to an upstream of their zone.
// Only a plain query with one allowed question may reach it; shapes that
// smuggle another name or are not queries must not. Cases marked observe
// are harmless either way (the message goes to the name's own upstream)
// and are only logged.
func TestTransparentDNSQueryShapes(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.addEvilZone(hostPort(evilUpstream4, 53))
	g.start()
	f := g.startFakeResolver(evilUpstream4, evilAnswers)
	server := netip.MustParseAddrPort(hostPort(evilUpstream4, 53))

	query := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		return m
	}
	packed := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type shape struct {
		name    string
		must    string // "drop", "pass", or "observe"
		srcPort uint16 // 0: any
		payload func(id uint16) []byte
	}
	withID := func(m *dns.Msg) func(uint16) []byte {
		return func(id uint16) []byte { m.Id = id; return packed(m) }
	}
	shapes := []shape{
		{"plain allowed query", "pass", 0, withID(query("h1.evil.test.", dns.TypeA))},
		{"upper case", "pass", 0, withID(query("H2.EVIL.TEST.", dns.TypeA))},
		{"no question", "drop", 0, withID(&dns.Msg{MsgHdr: dns.MsgHdr{RecursionDesired: true}})},
		{"two questions, the second off the list", "drop", 0, withID(&dns.Msg{Question: []dns.Question{
			{Name: "h3.evil.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET},
			{Name: "secret.exfil.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}})},
		{"opcode UPDATE", "drop", 0, func(id uint16) []byte {
			m := query("evil.test.", dns.TypeSOA)
			m.Opcode = dns.OpcodeUpdate
			m.Ns = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.evil.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 80)}}
			m.Id = id
			return packed(m)
		}},
		{"opcode NOTIFY", "drop", 0, func(id uint16) []byte {
			m := query("h4.evil.test.", dns.TypeA)
			m.Opcode = dns.OpcodeNotify
			m.Id = id
			return packed(m)
		}},
		{"QR=1 from port 53", "drop", 53, func(id uint16) []byte {
			m := query("h5.evil.test.", dns.TypeA)
			m.Response = true
			m.Id = id
			return packed(m)
		}},
		{"QR=1 from any port", "drop", 0, func(id uint16) []byte {
			m := query("h6.evil.test.", dns.TypeA)
			m.Response = true
			m.Id = id
			return packed(m)
		}},
		{"escaped dot in a label", "drop", 0, withID(query(`x\.h7.evil.test.`, dns.TypeA))},
		{"NUL byte in a label", "drop", 0, withID(query(`h8\000.evil.test.`, dns.TypeA))},
		{"class CHAOS", "drop", 0, func(id uint16) []byte {
			m := query("h9.evil.test.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			m.Id = id
			return packed(m)
		}},
		{"qtype ANY", "drop", 0, withID(query("h10.evil.test.", dns.TypeANY))},
		{"compression loop", "drop", 0, func(id uint16) []byte {
			return []byte{byte(id >> 8), byte(id), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}
		}},
		{"name off the list", "drop", 0, withID(query("secret.exfil.example.", dns.TypeA))},
		{"trailing bytes after the message", "observe", 0, func(id uint16) []byte {
			m := query("h11.evil.test.", dns.TypeA)
			m.Id = id
			return append(packed(m), []byte("\x06secret\x05exfil\x07example\x00\x00\x01\x00\x01")...)
		}},
		{"header says two questions, one present", "observe", 0, func(id uint16) []byte {
			m := query("h12.evil.test.", dns.TypeA)
			m.Id = id
			b := packed(m)
			b[5] = 2
			return b
		}},
		{"answer section with an off-list name", "observe", 0, func(id uint16) []byte {
			m := query("h13.evil.test.", dns.TypeA)
			m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "secret.exfil.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"data"}}}
			m.Id = id
			return packed(m)
		}},
		{"two OPT records", "observe", 0, func(id uint16) []byte {
			m := query("h14.evil.test.", dns.TypeA)
			m.SetEdns0(1232, false)
			m.SetEdns0(4096, true)
			m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 512}})
			m.Id = id
			return packed(m)
		}},
	}

	for hi, h := range []sb.Host{sb.OT, sb.Gateway} {
		t.Run(string(h), func(t *testing.T) {
			ids := make([]uint16, len(shapes))
			for i, sh := range shapes {
				ids[i] = uint16(0x4000 + hi*0x100 + i)
				if err := sendUDP(g.sb, h, sh.srcPort, server, sh.payload(ids[i])); err != nil {
					t.Fatalf("%s: %v", sh.name, err)
				}
			}
			time.Sleep(500 * time.Millisecond)
			for i, sh := range shapes {
				got := f.gotID(ids[i])
				switch {
				case sh.must == "drop" && got:
					t.Errorf("%s: reached the upstream", sh.name)
				case sh.must == "pass" && !got:
					t.Errorf("%s: did not reach the upstream", sh.name)
				case sh.must == "observe":
					t.Logf("%s: reached the upstream: %v", sh.name, got)
				}
			}
		})
	}
	if f.seen("secret.exfil.example") {
		t.Errorf("secret.exfil.example reached the upstream as a question")
	}
}

// sendUDP sends one datagram from host h, from port srcPort (0: any).
func sendUDP(s *sb.Sandbox, h sb.Host, srcPort uint16, dst netip.AddrPort, payload []byte) error {
	return s.Do(h, func() error {
		local := &net.UDPAddr{Port: int(srcPort)}
		if h == sb.Gateway && srcPort != 0 {
			// The guard holds port 53 on the LAN address and loopback.
			local.IP = net.ParseIP(sb.TunnelGateway4)
		}
		c, err := net.ListenUDP("udp", local)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WriteToUDPAddrPort(payload, dst)
		return err
	})
}

// TestTransparentDNSIPv6: the upstream of evil.test also has an IPv6
// address, and a resolver no config names listens next to it. DNS over
// IPv6, with extension headers before UDP, fragmented, or over TCP, from
// the OT host and from the gateway, reaches only the upstream and only for
// allowed names.
func TestTransparentDNSIPv6(t *testing.T) {
	const rogue6 = "2001:db8:20::54"
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.addEvilZone(hostPort(evilUpstream4, 53), hostPort(evilUpstream6, 53))
	g.start()
	up := g.startFakeResolver(evilUpstream6, evilAnswers)
	rogue := g.startFakeResolver(rogue6, evilAnswers)
	var tcp net.Listener
	if err := g.sb.Do(sb.VPC, func() error {
		var err error
		tcp, err = net.Listen("tcp", hostPort(rogue6, 53))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	upAddr := netip.MustParseAddrPort(hostPort(evilUpstream6, 53))
	rogueAddr := netip.MustParseAddrPort(hostPort(rogue6, 53))
	dstOpts := []byte{0, 0, 1, 4, 0, 0, 0, 0} // PadN
	padded := func(name string, pad int) func(uint16) []byte {
		return func(id uint16) []byte {
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			m.Id = id
			if pad > 0 {
				m.SetEdns0(4096, false)
				opt := m.IsEdns0()
				opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, pad)})
			}
			b, err := m.Pack()
			if err != nil {
				panic(err)
			}
			return b
		}
	}
	type row struct {
		name    string
		to      *fakeResolver
		dst     netip.AddrPort
		opt     int // 0, unix.IPV6_DSTOPTS or unix.IPV6_HOPOPTS
		payload func(uint16) []byte
		must    string // "drop", "pass" or "observe"
	}
	rows := []row{
		{"allowed name to the upstream", up, upAddr, 0, padded("h1.evil.test.", 0), "pass"},
		{"allowed name to another resolver", rogue, rogueAddr, 0, padded("h2.evil.test.", 0), "drop"},
		{"destination options, another resolver", rogue, rogueAddr, unix.IPV6_DSTOPTS, padded("h3.evil.test.", 0), "drop"},
		{"hop-by-hop options, another resolver", rogue, rogueAddr, unix.IPV6_HOPOPTS, padded("h4.evil.test.", 0), "drop"},
		{"destination options, name off the list", up, upAddr, unix.IPV6_DSTOPTS, padded("secret.exfil.example.", 0), "drop"},
		{"destination options, allowed name", up, upAddr, unix.IPV6_DSTOPTS, padded("h5.evil.test.", 0), "observe"},
		{"fragmented, allowed name", up, upAddr, 0, padded("big.evil.test.", 3000), "pass"},
		{"fragmented, another resolver", rogue, rogueAddr, 0, padded("h6.evil.test.", 3000), "drop"},
		{"fragmented, name off the list", up, upAddr, 0, padded("secret2.exfil.example.", 3000), "drop"},
	}
	for hi, h := range []sb.Host{sb.OT, sb.Gateway} {
		t.Run(string(h), func(t *testing.T) {
			// The OT host fragments for its link (1500); the gateway, having
			// reassembled, cannot forward such fragments into the tunnel
			// (1420) and answers Packet Too Big. Prime the path MTU first.
			for _, dst := range []netip.AddrPort{upAddr, rogueAddr} {
				if err := sendUDP6(g.sb, h, 0, nil, dst, padded("prime.evil.test.", 3000)(0xffff)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(200 * time.Millisecond)
			ids := make([]uint16, len(rows))
			for i, r := range rows {
				ids[i] = uint16(0x6000 + hi*0x100 + i)
				if err := sendUDP6(g.sb, h, r.opt, dstOpts, r.dst, r.payload(ids[i])); err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
			}
			time.Sleep(500 * time.Millisecond)
			for i, r := range rows {
				got := r.to.gotID(ids[i])
				switch {
				case r.must == "drop" && got:
					t.Errorf("%s: reached %s", r.name, r.dst)
				case r.must == "pass" && !got:
					t.Errorf("%s: did not reach %s", r.name, r.dst)
				case r.must == "observe":
					t.Logf("%s: reached %s: %v", r.name, r.dst, got)
				}
			}
			if err := g.sb.DialTCP(h, hostPort(rogue6, 53), time.Second); err == nil {
				t.Errorf("TCP to [%s]:53 connected", rogue6)
			}
			if err := g.sb.DialTCP(h, hostPort(evilUpstream6, 53), time.Second); err == nil {
				t.Errorf("TCP to [%s]:53 connected", evilUpstream6)
			}
		})
	}
	for _, n := range []string{"secret.exfil.example", "secret2.exfil.example"} {
		if up.seen(n) || rogue.seen(n) {
			t.Errorf("%s reached a resolver", n)
		}
	}
	t.Logf("queue: %s", g.queueDrops())
}

// queueDrops is the transparent mode's queue counters, for the log.
func (g *gateway) queueDrops() string {
	return fmt.Sprint(g.labelledCounts("edgeward_dns_queue_dropped_total", "cause"))
}

// sendUDP6 sends one IPv6 datagram from host h to dst, with the sticky
// extension header opt (unix.IPV6_DSTOPTS or IPV6_HOPOPTS, 0 for none)
// holding hdr. Datagrams larger than the path MTU are fragmented by the
// sender's kernel.
func sendUDP6(s *sb.Sandbox, h sb.Host, opt int, hdr []byte, dst netip.AddrPort, payload []byte) error {
	return s.Do(h, func() error {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{})
		if err != nil {
			return err
		}
		defer c.Close()
		if opt != 0 {
			raw, err := c.SyscallConn()
			if err != nil {
				return err
			}
			var serr error
			if err := raw.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.IPPROTO_IPV6, opt, string(hdr))
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("set extension header %d: %w", opt, serr)
			}
		}
		_, err = c.WriteToUDPAddrPort(payload, dst)
		return err
	})
}

// TestTransparentDNSOtherServersAndPorts: answers from servers that are
// not the name's upstream, DNS to an internet host's port 53 (UDP and
// TCP, also toward an endpoint that lists port 53, also while the rules
// are flushed), DNS on port 5353 and from source port 53 find no way
// through.
func TestTransparentDNSOtherServersAndPorts(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true, Extra: []demopolicy.Endpoint{
		{Name: "dns-endpoint", To: []string{sb.EndpointHost4 + "/32"}, Ports: []string{"udp/53", "tcp/53"}},
	}})
	g.start()
	for _, addr := range []string{hostPort(sb.InternetHost4, 53), hostPort(sb.EndpointHost4, 53)} {
		if err := g.sb.ListenUDPEcho(sb.WAN, addr); err != nil {
			t.Fatal(err)
		}
		if err := g.sb.ListenTCPEcho(sb.WAN, addr); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("answers from other servers", func(t *testing.T) {
		for _, tc := range []struct {
			from   sb.Host
			src    string
			forged string
		}{
			{sb.VPC, hostPort(sb.RogueResolver4, 53), "198.18.2.96"}, // through the tunnel
			{sb.WAN, hostPort(sb.InternetHost4, 53), "198.18.2.95"},  // over the uplink
		} {
			var pc net.PacketConn
			if err := g.sb.Do(sb.OT, func() error {
				var err error
				pc, err = net.ListenPacket("udp", ":40053")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			answer := dnsAnswer(t, "unasked.partner.test.", 3600, tc.forged)
			to := netip.MustParseAddrPort(hostPort(sb.OTAddr4, 40053))
			if err := rawUDP4(g.sb, tc.from, netip.MustParseAddrPort(tc.src), to, answer); err != nil {
				t.Fatal(err)
			}
			pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			buf := make([]byte, 1500)
			if n, _, err := pc.ReadFrom(buf); err == nil {
				t.Errorf("an answer from %s reached the OT host (%d bytes)", tc.src, n)
			}
			pc.Close()
			if err := g.sb.EchoTCP(sb.OT, hostPort(tc.forged, sb.LearnedPort), time.Second); err == nil {
				t.Errorf("an answer from %s taught the data plane %s", tc.src, tc.forged)
			}
		}
	})

	t.Run("port 53 of hosts that are not upstreams", func(t *testing.T) {
		for _, h := range []sb.Host{sb.OT, sb.Gateway} {
			for _, dst := range []string{hostPort(sb.InternetHost4, 53), hostPort(sb.EndpointHost4, 53)} {
				if err := g.sb.EchoUDP(h, dst, 500*time.Millisecond); err == nil {
					t.Errorf("%s: UDP to %s came back", h, dst)
				}
				if err := g.sb.EchoTCP(h, dst, 500*time.Millisecond); err == nil {
					t.Errorf("%s: TCP to %s came back", h, dst)
				}
			}
		}
	})

	t.Run("port 5353 and source port 53", func(t *testing.T) {
		for _, h := range []sb.Host{sb.OT, sb.Gateway} {
			if err := g.sb.EchoUDP(h, hostPort(sb.InternetHost4, sb.UDPEchoPort), 500*time.Millisecond); err == nil {
				t.Errorf("%s: DNS-free UDP to the internet host's 5353 came back", h)
			}
		}
		// From source port 53 (a DNS answer's shape) to the internet
		// host's echo: queued for its source port, refused as an answer
		// from a host that is no upstream.
		payload := dnsAnswer(t, "h1.partner.test.", 60, "198.18.1.1")
		for _, h := range []sb.Host{sb.OT, sb.Gateway} {
			if err := echoFromPort(g.sb, h, 53, hostPort(sb.InternetHost4, sb.UDPEchoPort), payload); err == nil {
				t.Errorf("%s: UDP from port 53 to the internet host's 5353 came back", h)
			}
		}
	})

	t.Run("rules flushed: the data plane's gate", func(t *testing.T) {
		for _, chain := range []string{"EDGEWARD-DNS-OUT", "EDGEWARD-DNS-FWD"} {
			if _, err := g.sbOutput(sb.Gateway, "iptables", "-F", chain); err != nil {
				t.Fatal(err)
			}
		}
		for _, h := range []sb.Host{sb.OT, sb.Gateway} {
			dst := hostPort(sb.EndpointHost4, 53) // an endpoint that lists udp/53 and tcp/53
			if err := g.sb.EchoUDP(h, dst, 300*time.Millisecond); err == nil {
				t.Errorf("%s, rules flushed: UDP to %s came back", h, dst)
			}
			if err := g.sb.EchoTCP(h, dst, 300*time.Millisecond); err == nil {
				t.Errorf("%s, rules flushed: TCP to %s came back", h, dst)
			}
		}
		if n := g.counters()["tc_egress/drop/dns_unguarded"]; n == 0 {
			t.Errorf("the gate counted nothing as dns_unguarded")
		}
	})
}

// echoFromPort sends payload from port srcPort of host h to a UDP echo at
// dst and waits half a second for it to come back.
func echoFromPort(s *sb.Sandbox, h sb.Host, srcPort uint16, dst string, payload []byte) error {
	var c *net.UDPConn
	err := s.Do(h, func() error {
		local := &net.UDPAddr{Port: int(srcPort)}
		if h == sb.Gateway {
			local.IP = net.ParseIP(sb.GatewayWAN4) // the guard holds port 53 elsewhere
		}
		var err error
		c, err = net.ListenUDP("udp", local)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.WriteToUDPAddrPort(payload, netip.MustParseAddrPort(dst)); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _, err = c.ReadFrom(make([]byte, 1500))
	return err
}

// dnsProber asks, from one socket in a host, every 10 ms: the rogue
// resolver for an allowed name, and the upstream for a name off the list.
// Any answer to either went around the guard.
type dnsProber struct {
	leaks, sent atomic.Int64
	stop        chan struct{}
	done        sync.WaitGroup
}

func (g *gateway) startProber(h sb.Host) *dnsProber {
	g.t.Helper()
	var c *net.UDPConn
	if err := g.sb.Do(h, func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{})
		return err
	}); err != nil {
		g.t.Fatal(err)
	}
	p := &dnsProber{stop: make(chan struct{})}
	rogue := netip.MustParseAddrPort(rogueDNS)
	upstream := netip.MustParseAddrPort(upstreamDNS)
	p.done.Add(2)
	go func() {
		defer p.done.Done()
		buf := make([]byte, 1500)
		for {
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, from, err := c.ReadFromUDPAddrPort(buf)
			select {
			case <-p.stop:
				if err != nil {
					return
				}
			default:
			}
			if err == nil {
				m := new(dns.Msg)
				if m.Unpack(buf[:n]) == nil && (from.Addr().Unmap() == rogue.Addr() || len(m.Question) == 1 && strings.HasPrefix(m.Question[0].Name, "x-")) {
					p.leaks.Add(1)
				}
			}
		}
	}()
	go func() {
		defer p.done.Done()
		defer func() { time.Sleep(300 * time.Millisecond); c.Close() }()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			for _, q := range []struct {
				to   netip.AddrPort
				name string
			}{{rogue, fmt.Sprintf("h%d.partner.test.", 1+i%250)}, {upstream, fmt.Sprintf("x-%d.y.partner.test.", i)}} {
				m := new(dns.Msg)
				m.SetQuestion(q.name, dns.TypeA)
				b, _ := m.Pack()
				if _, err := c.WriteToUDPAddrPort(b, q.to); err == nil {
					p.sent.Add(1)
				}
			}
		}
	}()
	return p
}

// finish stops the prober and returns how many answers leaked.
func (p *dnsProber) finish() int64 {
	close(p.stop)
	p.done.Wait()
	return p.leaks.Load()
}

// TestTransparentDNSRestartAndQueueChange: while the OT host and a process
// on the gateway keep asking a rogue resolver for allowed names and the
// upstream for names off the list, the daemon is killed and started again,
// then reloaded with another queue number. Nothing is answered around the
// guard at any time; afterwards the new queue judges.
func TestTransparentDNSRestartAndQueueChange(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.start()
	probers := []*dnsProber{g.startProber(sb.OT), g.startProber(sb.Gateway)}

	time.Sleep(300 * time.Millisecond)
	g.kill()
	time.Sleep(500 * time.Millisecond)
	g.start()
	time.Sleep(300 * time.Millisecond)

	data, err := os.ReadFile(g.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "  transparent: true", "  transparent: true\n  queue: {number: 77}", 1)
	writeFile(t, g.cfgPath, text)
	if out, err := g.cli("reload", "-c", g.cfgPath); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)

	var leaks, sent int64
	for _, p := range probers {
		leaks += p.finish()
		sent += p.sent.Load()
	}
	if leaks != 0 {
		t.Errorf("%d of %d probes were answered around the guard during the restart and the reload", leaks, sent)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		out, err := g.sbOutput(sb.Gateway, cmd, "-S")
		if err != nil || strings.Contains(out, "--queue-num 53") || !strings.Contains(out, "--queue-num 77") {
			t.Errorf("%s after the reload to queue 77: %v\n%s", cmd, err, out)
		}
	}
	queues, err := g.sbOutput(sb.Gateway, "cat", "/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		t.Fatal(err)
	}
	bound := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(queues), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			bound[f[0]] = true
		}
	}
	if !bound["77"] || bound["53"] {
		t.Errorf("queues bound after the reload: %v, want 77 alone", bound)
	}
	if resp, err := g.sb.Query(sb.OT, upstreamDNS, "h42.partner.test", false, 2*time.Second); err != nil || sb.FirstA(resp) != "198.18.1.42" {
		t.Errorf("an allowed name after the reload: %v %v", resp, err)
	}
	if resp, err := g.sb.Query(sb.OT, rogueDNS, "h43.partner.test", false, 500*time.Millisecond); err == nil {
		t.Errorf("the rogue resolver answered after the reload: %v", resp)
	}
	for _, q := range g.sb.ResolverQueries() {
		if strings.HasPrefix(q.Name, "x-") || q.Server == sb.RogueResolver4 {
			t.Errorf("%s reached %s", q.Name, q.Server)
			break
		}
	}
	t.Logf("%d probes sent", sent)
}

// TestExplainHostileArguments: explain with arguments that make no sense
// fails with a message (exit 1 or 2), never a crash; explains run at once
// agree; explains during reloads always give one of the two policies'
// answers; and none of it changes a counter or an entry of a map real
// traffic uses.
func TestExplainHostileArguments(t *testing.T) {
	// Learned entries outlive the test.
	g := newGateway(t, demopolicy.Params{Transparent: true, TTLMin: "10m", TTLMax: "1h", Extra: []demopolicy.Endpoint{
		{Name: "dns-endpoint", To: []string{sb.EndpointHost4 + "/32"}, Ports: []string{"udp/53"}},
	}})
	g.start()
	if _, err := g.sb.Resolve(sb.OT, "h1.partner.test"); err != nil {
		t.Fatal(err)
	}
	wg, _ := g.sb.WireGuard()
	before, mapsBefore := g.explainNoise(), g.mapEntries()

	bad := [][]string{
		{"-on", "nonexistent0", "tcp", "198.18.0.20:443"},
		{"-on", strings.Repeat("a", 5000), "tcp", "198.18.0.20:443"},
		{"-on", "../../../../etc/passwd", "tcp", "198.18.0.20:443"},
		{"-from", "eth0", "tcp", "198.18.0.20:443"}, // the OT host's interface, another namespace
		{"-from", "lan0", "-on", "wan0", "tcp", "198.18.0.20:443"},
		{"-from", "wan0", "tcp", "10.10.0.2:22"}, // no -src
		{"-from", "lo", "tcp", "198.18.0.20:443"},
		{"-from", wg, "tcp", "10.10.0.2:22"},
		{"tcp", "198.18.0.20:70000"},
		{"tcp", "198.18.0.20:-1"},
		{"tcp", "198.18.0.20"},
		{"tcp", "198.18.0.20:443:1"},
		{"sctp", "198.18.0.20:443"},
		{"icmp", "198.18.0.20:443"},
		{"-from", "lan0", "-src", "10.10.0.2", "udp", "[2001:db8:18::20]:53"},
		{"-src", "fd00:10::2", "tcp", "198.18.0.20:443"},
		{"-src", "10.10.0.2:99999", "tcp", "198.18.0.20:443"},
		{"-tcp-flags", "syn,,ack", "tcp", "198.18.0.20:443"},
		{"-tcp-flags", "urg", "tcp", "198.18.0.20:443"},
		{"tcp"},
		{"tcp", "198.18.0.20:443", "extra"},
	}
	for _, args := range bad {
		out, err := g.cli(append([]string{"explain", "-c", g.cfgPath}, args...)...)
		if code := exitCode(err); code != 1 && code != 2 || strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") || strings.TrimSpace(out) == "" {
			t.Errorf("explain %q: exit %d\n%s", shorten(args), code, out)
		}
	}

	odd := []struct {
		args            []string
		verdict, reason string
	}{
		{[]string{"tcp", "[::ffff:198.18.0.20]:443"}, "pass", "endpoint"}, // IPv4-mapped counts as IPv4
		{[]string{"-from", "lan0", "-src", "[::ffff:10.10.0.2]:40000", "tcp", "[::ffff:198.18.1.1]:8883"}, "pass", "learned"},
		{[]string{"-on", "wan0", "udp", "198.18.0.20:53"}, "drop", "dns_unguarded"},
		{[]string{"-from", "lan0", "udp", "198.18.0.20:53"}, "", ""},
		{[]string{"-on", "wan0", "tcp", "0.0.0.0:0"}, "", ""},
		{[]string{"-on", "wan0", "udp", "255.255.255.255:67"}, "", ""},
		{[]string{"-on", "wan0", "udp", "224.0.0.251:5353"}, "", ""},
		{[]string{"-on", "wan0", "tcp", "[fe80::1%wan0]:443"}, "", ""},
		{[]string{"-from", "wan0", "-src", "10.20.0.2:53", "udp", "10.10.0.2:40000"}, "", ""},
		{[]string{"-from", "lan0", "-src", "10.20.0.2:53", "udp", "10.20.8.15:5353"}, "", ""},
	}
	for _, o := range odd {
		out, err := g.cli(append([]string{"explain", "-c", g.cfgPath, "-json"}, o.args...)...)
		var a explainAnswer
		if err != nil || json.Unmarshal([]byte(out), &a) != nil {
			t.Errorf("explain %q: %v\n%s", o.args, err, out)
			continue
		}
		if o.verdict != "" && (a.Verdict != o.verdict || a.Reason != o.reason) {
			t.Errorf("explain %q: %s %s, want %s %s", o.args, a.Verdict, a.Reason, o.verdict, o.reason)
		}
	}

	t.Run("concurrent", func(t *testing.T) {
		args := []string{"explain", "-c", g.cfgPath, "-json", "-from", "lan0", "tcp", "198.18.1.1:8883"}
		var wgr sync.WaitGroup
		outs := make([]string, 8)
		for i := range outs {
			wgr.Go(func() {
				out, err := g.cli(args...)
				if err != nil {
					out = err.Error() + "\n" + out
				}
				outs[i] = out
			})
		}
		wgr.Wait()
		for _, out := range outs {
			if !strings.Contains(out, `"reason": "learned"`) && !strings.Contains(out, `"reason":"learned"`) {
				t.Errorf("a concurrent explain: %s", out)
			}
		}
	})

	t.Run("during reloads", func(t *testing.T) {
		other := demopolicy.Params{Transparent: true, TTLMin: "10m", TTLMax: "1h", Extra: []demopolicy.Endpoint{
			{Name: "dns-endpoint", To: []string{sb.EndpointHost4 + "/32"}, Ports: []string{"udp/53"}},
			{Name: "internet-https", To: []string{sb.InternetHost4 + "/32"}, Ports: []string{"tcp/443"}},
		}}
		same := other
		same.Extra = other.Extra[:1]
		stop := make(chan struct{})
		var reloads atomic.Int64
		var wgr sync.WaitGroup
		wgr.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					rewritePolicy(t, g, same)
					g.cli("reload", "-c", g.cfgPath)
					return
				default:
				}
				p := same
				if i%2 == 0 {
					p = other
				}
				rewritePolicy(t, g, p)
				if out, err := g.cli("reload", "-c", g.cfgPath); err != nil {
					t.Errorf("reload: %v\n%s", err, out)
				}
				reloads.Add(1)
			}
		})
		for range 15 {
			out, err := g.cli("explain", "-c", g.cfgPath, "-json", "tcp", hostPort(sb.InternetHost4, 443))
			var a explainAnswer
			if err != nil || json.Unmarshal([]byte(out), &a) != nil {
				t.Errorf("explain during a reload: %v\n%s", err, out)
				continue
			}
			if !(a.Verdict == "pass" && a.Reason == "endpoint") && !(a.Verdict == "drop" && a.Reason == "no_rule") {
				t.Errorf("explain during a reload: %s %s rule %+v", a.Verdict, a.Reason, a.Rule)
			}
		}
		close(stop)
		wgr.Wait()
		t.Logf("%d reloads", reloads.Load())
	})

	if diff := cmp.Diff(before, g.explainNoise()); diff != "" {
		t.Errorf("explaining changed counters (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(mapsBefore, g.mapEntries()); diff != "" {
		t.Errorf("explaining changed map entries (-before +after):\n%s", diff)
	}
}

func shorten(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if len(a) > 40 {
			out[i] = a[:40] + "..."
		}
	}
	return out
}

// explainNoise is the kernel's counters without what the tunnel, the links
// and the WAN side's multicast move on their own (and reloads do not
// touch): cells explain probes would hit if it counted.
func (g *gateway) explainNoise() map[string]uint64 {
	out := g.quietCounters()
	for _, cell := range []string{"tc_egress/pass/endpoint", "uplink_ingress/pass/peer", "uplink_ingress/pass/flow", "uplink_ingress/drop/unsolicited"} {
		delete(out, cell)
	}
	return out
}

// mapEntries counts the entries of the maps real traffic writes, from
// status.
func (g *gateway) mapEntries() map[string]int {
	out, err := g.cli("status", "-c", g.cfgPath, "-json")
	if err != nil && exitCode(err) != 3 {
		g.t.Fatalf("status: %v\n%s", err, out)
	}
	var st struct {
		Maps []struct {
			Map     string
			Entries int
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		g.t.Fatal(err)
	}
	m := map[string]int{}
	for _, e := range st.Maps {
		if e.Map != "ew_tables/ipv4" && e.Map != "ew_tables/ipv6" {
			m[e.Map] = e.Entries
		}
	}
	return m
}

// TestExplainDNSFromLAN: with transparent mode, DNS from an OT host to an
// endpoint that lists udp/53 is dropped (the queue refuses a server that
// is no upstream, and tc_egress's gate drops it without the guard's mark),
// yet explain -from lan0 runs xdp_lan alone and reports it passing.
func TestExplainDNSFromLAN(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true, Extra: []demopolicy.Endpoint{
		{Name: "dns-endpoint", To: []string{sb.EndpointHost4 + "/32"}, Ports: []string{"udp/53"}},
	}})
	g.start()
	dst := hostPort(sb.EndpointHost4, 53)
	if err := g.sb.ListenUDPEcho(sb.WAN, dst); err != nil {
		t.Fatal(err)
	}
	if err := g.sb.EchoUDP(sb.OT, dst, time.Second); err == nil {
		t.Fatalf("UDP from the OT host to %s came back", dst)
	}

	out, err := g.cli("explain", "-c", g.cfgPath, "-json", "-from", sb.GatewayLANIface, "udp", dst)
	var a explainAnswer
	if err != nil || json.Unmarshal([]byte(out), &a) != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	if a.Verdict == "pass" {
		t.Errorf("explain -from %s udp %s: %s %s (rule %q), but the data path drops it", sb.GatewayLANIface, dst, a.Verdict, a.Reason, a.Rule.Name)
	}
}

// TestTransparentDNSUDPGSO: a process on the gateway sends one UDP GSO
// buffer (UDP_SEGMENT) whose first segment is an allowed query and whose
// second asks for a name off the list. The queue sees every segment on its
// own: the first reaches the upstream, the second does not.
func TestTransparentDNSUDPGSO(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.addEvilZone(hostPort(evilUpstream4, 53))
	g.start()
	f := g.startFakeResolver(evilUpstream4, evilAnswers)

	const segment = 96
	msg := func(id uint16, name string) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.Id = id
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := msg(0x7001, "h15.evil.test.")
	first = append(first, make([]byte, segment-len(first))...) // trailing bytes pass
	buf := append(first, msg(0x7002, "secret3.exfil.example.")...)

	err := g.sb.Do(sb.Gateway, func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(hostPort(evilUpstream4, 53))))
		if err != nil {
			return err
		}
		defer c.Close()
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, segment) })
		if serr != nil {
			return fmt.Errorf("UDP_SEGMENT: %w", serr)
		}
		_, err = c.Write(buf)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if !f.gotID(0x7001) {
		t.Errorf("the allowed first segment did not reach the upstream")
	}
	if f.gotID(0x7002) || f.seen("secret3.exfil.example") {
		t.Errorf("the second segment, a name off the list, reached the upstream")
	}
}

// TestTransparentDNSRuleAheadOfTheJump: a firewall script inserts an
// ACCEPT at the top of FORWARD or OUTPUT after the daemon started (as
// hand-written gateway scripts and container runtimes do). The jump into
// the guard's chain is still there, once, so the daemon's check calls the
// rules intact; but DNS to a resolver in the VPC, where no data-plane
// gate stands, now bypasses the queue for good.
//
// The same holds for a rule of ours replaced by another (iptables -R): the
// check counts rules, it does not compare them.
func TestTransparentDNSRuleAheadOfTheJump(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.start()

	for i, tc := range []struct {
		from  sb.Host
		chain string
		rule  []string
	}{
		{sb.OT, "FORWARD", []string{"-i", sb.GatewayLANIface, "-j", "ACCEPT"}},
		{sb.Gateway, "OUTPUT", []string{"-o", "wg+", "-j", "ACCEPT"}},
	} {
		t.Run(tc.chain, func(t *testing.T) {
			args := append([]string{"-I", tc.chain, "1"}, tc.rule...)
			if _, err := g.sbOutput(sb.Gateway, "iptables", args...); err != nil {
				t.Fatal(err)
			}
			defer g.sbOutput(sb.Gateway, "iptables", append([]string{"-D", tc.chain}, tc.rule...)...)
			time.Sleep(2500 * time.Millisecond) // longer than the daemon's check

			// The answers still cross the guard's INPUT and FORWARD rules
			// (they arrive on the tunnel) and are dropped; the queries are
			// what leak: to a resolver no config names, and names off the
			// list to the upstream, which resolves them for anyone.
			rogueName := fmt.Sprintf("h%d.partner.test", 60+i)
			offList := "x-" + randomLabel() + ".y.partner.test"
			g.sb.Query(tc.from, rogueDNS, rogueName, false, 300*time.Millisecond)
			g.sb.Query(tc.from, upstreamDNS, offList, false, 300*time.Millisecond)
			g.checkNeverReached(t, rogueName, offList)
			rules, err := g.sbOutput(sb.Gateway, "iptables", "-S", tc.chain)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(rules), "\n") // -P first, then the rules in order
			jumpFirst := len(lines) > 1 && strings.HasSuffix(lines[1], "-j EDGEWARD-DNS-"+map[string]string{"FORWARD": "FWD", "OUTPUT": "OUT"}[tc.chain])
			if out, err := g.cli("status", "-c", g.cfgPath, "-json"); err == nil && !jumpFirst && strings.Contains(out, `"dns_rules": "intact"`) {
				t.Errorf("status calls the rules intact while %s accepts before the jump:\n%s", tc.chain, rules)
			}
		})
	}

	// The check counts rules per chain; a rule replaced by another keeps
	// the count. Here the first rule of the OUTPUT chain ("-o lo -j
	// RETURN") becomes "-j RETURN": everything the gateway sends skips
	// the queue.
	t.Run("a rule of ours replaced", func(t *testing.T) {
		if _, err := g.sbOutput(sb.Gateway, "iptables", "-R", "EDGEWARD-DNS-OUT", "1", "-j", "RETURN"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond)
		offList := "x-" + randomLabel() + ".y.partner.test"
		g.sb.Query(sb.Gateway, upstreamDNS, offList, false, 300*time.Millisecond)
		g.checkNeverReached(t, offList)
		if out, err := g.sbOutput(sb.Gateway, "iptables", "-S", "EDGEWARD-DNS-OUT"); err != nil || !strings.Contains(out, "-o lo") {
			t.Errorf("the replaced rule was not restored: %v\n%s", err, out)
		}
	})
}

// TestTransparentDNSAuditMode: mode audit "passes everything and counts
// what it would have dropped" (README), and the packaged example starts in
// audit so that an operator sees what enforce would drop before it does.
// With transparent mode on, the queue drops DNS all the same.
func TestTransparentDNSAuditMode(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true, Mode: config.ModeAudit})
	g.start()
	if _, err := g.sb.Query(sb.OT, upstreamDNS, "h1.partner.test", false, 2*time.Second); err != nil {
		t.Fatalf("an allowed name in audit mode: %v", err)
	}
	if _, err := g.sb.Query(sb.OT, rogueDNS, "h2.partner.test", false, time.Second); err != nil {
		t.Errorf("audit mode: a resolver no config names got nothing: %v", err)
	}
	if _, err := g.sb.Query(sb.OT, upstreamDNS, "x-"+randomLabel()+".y.partner.test", false, time.Second); err != nil {
		t.Errorf("audit mode: a name off the list got nothing: %v", err)
	}
	t.Logf("intercepted: %v", g.interceptCounts())
}

// TestTransparentDNSQueueTakenOnReload: the operator reloads with a
// dns.queue.number that another program on the gateway already reads (an
// IPS such as Suricata in NFQUEUE mode, which accepts what it does not
// block). The reload must fail without leaving DNS to that reader: the
// daemon installs the rules for the new number before it knows it can
// bind it.
func TestTransparentDNSQueueTakenOnReload(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.start()

	var foreign *nfqueue.Nfqueue
	err := g.sb.Do(sb.Gateway, func() error {
		var err error
		foreign, err = nfqueue.Open(&nfqueue.Config{NfQueue: 77, MaxPacketLen: 0xffff, MaxQueueLen: 64, Copymode: nfqueue.NfQnlCopyPacket, WriteTimeout: time.Second})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen atomic.Int64
	if err := foreign.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
		seen.Add(1)
		foreign.SetVerdict(*a.PacketID, nfqueue.NfAccept)
		return 0
	}, func(error) int { return 0 }); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(g.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, g.cfgPath, strings.Replace(string(data), "  transparent: true", "  transparent: true\n  queue: {number: 77}", 1))
	out, err := g.cli("reload", "-c", g.cfgPath)
	t.Logf("reload to a taken queue: %v\n%s", err, out)

	if resp, err := g.sb.Query(sb.OT, rogueDNS, "h70.partner.test", false, time.Second); err == nil {
		t.Errorf("after the reload, the rogue resolver answered: %v", sb.FirstA(resp))
	}
	offList := "x-" + randomLabel() + ".y.partner.test"
	if _, err := g.sb.Query(sb.Gateway, upstreamDNS, offList, false, time.Second); err == nil {
		t.Errorf("after the reload, a name off the list from the gateway was answered")
	}
	g.checkNeverReached(t, "h70.partner.test", offList)
	if n := seen.Load(); n > 0 {
		t.Errorf("%d DNS packets went to the foreign queue's reader", n)
	}
	// The guard runs again with the previous dns section.
	if _, err := g.sb.Resolve(sb.OT, "h71.partner.test"); err != nil {
		t.Errorf("after the rejected reload, the guard's own listener does not answer: %v", err)
	}
}

// TestTransparentDNSClientOnPort53: some DNS clients and forwarders send
// their queries from source port 53 (BIND's query-source port 53, older
// embedded stacks, a site resolver forwarding to the gateway). Through the
// gateway to the upstream that works in transparent mode; to the guard's
// own listener it does not: the INPUT chain queues every datagram from
// port 53 as if it were an answer, and the judge refuses a query to a
// server that is no upstream.
func TestTransparentDNSClientOnPort53(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.start()

	ask := func(server string) error {
		m := new(dns.Msg)
		m.SetQuestion("h80.partner.test.", dns.TypeA)
		b, _ := m.Pack()
		var c *net.UDPConn
		if err := g.sb.Do(sb.OT, func() error {
			var err error
			c, err = net.ListenUDP("udp", &net.UDPAddr{Port: 53})
			return err
		}); err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.WriteToUDPAddrPort(b, netip.MustParseAddrPort(server)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, _, err := c.ReadFrom(make([]byte, 1500))
		return err
	}
	if err := ask(upstreamDNS); err != nil {
		t.Errorf("from port 53 through the gateway to the upstream: %v", err)
	}
	if err := ask(hostPort(sb.GatewayLAN4, 53)); err != nil {
		t.Errorf("from port 53 to the guard's own listener: %v; intercepted %v", err, g.interceptCounts())
	}
}
