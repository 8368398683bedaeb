package integration

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// The cloud resolver of the DNS tests: an authoritative server for
// partner.test in the VPC, reached by the guard through the tunnel.
const (
	cloudResolver = "10.20.0.2"
	learnedPort   = 8883
)

// dnsPolicy is the dns: section of the DNS tests.
const dnsPolicy = `
dns:
  listen: [10.10.0.1:53, 127.0.0.1:53]
  upstreams:
    - zones: [partner.test]
      servers: [10.20.0.2:53]
  names:
    - match: "*.partner.test"
      ports: [tcp/8883]
      answers_in: [198.18.0.0/16]
  ttl: {min: 1s, max: 2s}
`

// cloudAnswers maps a query name to the address and TTL the cloud
// resolver gives it: hN.partner.test is 198.18.1.N; spoof.partner.test
// points outside answers_in.
func cloudAnswer(name string) (netip.Addr, uint32, bool) {
	label, _, _ := strings.Cut(strings.TrimSuffix(strings.ToLower(name), "."), ".partner.test")
	switch {
	case label == "spoof":
		return netip.MustParseAddr(sb.InternetHost4), 60, true
	case label == "short":
		return netip.MustParseAddr("198.18.2.1"), 1, true
	case strings.HasPrefix(label, "h"):
		n, err := strconv.Atoi(label[1:])
		if err != nil || n < 1 || n > 250 {
			return netip.Addr{}, 0, false
		}
		return netip.AddrFrom4([4]byte{198, 18, 1, byte(n)}), 60, true
	}
	return netip.Addr{}, 0, false
}

// startCloudResolver serves partner.test on 10.20.0.2:53 in the VPC, and
// makes 198.18.0.0/16 local to the uplink side with an echo on 8883 there.
func (g *gateway) startCloudResolver() {
	g.t.Helper()
	g.ipIn(sb.VPC, "addr", "add", cloudResolver+"/32", "dev", "lo")
	g.ipIn(sb.WAN, "route", "add", "local", "198.18.1.0/24", "dev", "lo")
	g.ipIn(sb.WAN, "route", "add", "local", "198.18.2.0/24", "dev", "lo")
	g.listenTCP(sb.WAN, fmt.Sprintf("0.0.0.0:%d", learnedPort), echo)

	var pc net.PacketConn
	err := g.sb.Do(sb.VPC, func() error {
		var err error
		pc, err = net.ListenPacket("udp", cloudResolver+":53")
		return err
	})
	if err != nil {
		g.t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(answerCloud)}
	go srv.ActivateAndServe()
	g.t.Cleanup(func() { srv.Shutdown() })
}

func answerCloud(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	q := req.Question[0]
	addr, ttl, ok := cloudAnswer(q.Name)
	switch {
	case !ok:
		resp.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA && addr.Is4():
		resp.Answer = append(resp.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   addr.AsSlice(),
		})
	}
	w.WriteMsg(resp)
}

// resolve asks the guard at the gateway's LAN address from host h.
func (g *gateway) resolve(h sb.Host, name string) (*dns.Msg, error) {
	var resp *dns.Msg
	err := g.sb.Do(h, func() error {
		c := &dns.Client{Timeout: 3 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		var err error
		resp, _, err = c.Exchange(m, sb.Addr(sb.GatewayLAN4, 53))
		return err
	})
	return resp, err
}

func firstA(resp *dns.Msg) string {
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

// TestDNSGuardOpensLearnedDestinations: the OT host resolves through the
// guard and connects at once, 200 times, each time to a new address; before
// the answer the address is closed; names off the list are refused and an
// answer outside answers_in is rejected; an entry expires on the kernel
// clock while the connection it opened goes on; a restart keeps the
// learned entries.
func TestDNSGuardOpensLearnedDestinations(t *testing.T) {
	g := newGateway(t, demopolicy.Params{ExtraYAML: dnsPolicy})
	g.startCloudResolver()
	g.start()

	g.expect([]probe{{"learned address before any answer", sb.OT, "tcp-echo", sb.Addr("198.18.1.200", learnedPort), false}})

	for i := 1; i <= 200; i++ {
		name := fmt.Sprintf("h%d.partner.test", i)
		resp, err := g.resolve(sb.OT, name)
		if err != nil || resp.Rcode != dns.RcodeSuccess || firstA(resp) == "" {
			t.Fatalf("resolve %s: %v %v", name, err, resp)
		}
		// No pause between the answer and the connection.
		if err := g.sb.EchoTCP(sb.OT, sb.Addr(firstA(resp), learnedPort), 2*time.Second); err != nil {
			t.Fatalf("iteration %d: connect to %s right after the answer: %v", i, firstA(resp), err)
		}
	}

	for _, tc := range []struct {
		name  string
		rcode int
	}{
		{"evil.example.test", dns.RcodeRefused},
		{"spoof.partner.test", dns.RcodeServerFailure},
	} {
		resp, err := g.resolve(sb.OT, tc.name)
		if err != nil || resp.Rcode != tc.rcode {
			t.Errorf("resolve %s: rcode %v (%v), want %s", tc.name, rcodeOf(resp), err, dns.RcodeToString[tc.rcode])
		}
	}

	t.Run("expiry", func(t *testing.T) {
		resp, err := g.resolve(sb.OT, "short.partner.test")
		if err != nil || firstA(resp) == "" {
			t.Fatalf("resolve short.partner.test: %v %v", err, resp)
		}
		open, err := g.dialTCP(sb.OT, sb.Addr(firstA(resp), learnedPort), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer open.Close()
		time.Sleep(3 * time.Second) // past ttl.max
		roundTrip(t, open, "connection opened before the expiry", true)
		g.expect([]probe{{"new connection after the expiry", sb.OT, "tcp-echo", sb.Addr(firstA(resp), learnedPort), false}})
	})

	t.Run("restart keeps learned entries", func(t *testing.T) {
		resp, err := g.resolve(sb.OT, "h7.partner.test")
		if err != nil || firstA(resp) == "" {
			t.Fatalf("resolve: %v %v", err, resp)
		}
		g.kill()
		g.start()
		g.expect([]probe{{"learned before the restart", sb.OT, "tcp-echo", sb.Addr(firstA(resp), learnedPort), true}})
		if !strings.Contains(g.daemon.Tail(50), "restored=1") {
			t.Errorf("the guard did not restore the kernel's entry:\n%s", g.daemon.Tail(10))
		}
	})
}

func rcodeOf(m *dns.Msg) string {
	if m == nil {
		return "none"
	}
	return dns.RcodeToString[m.Rcode]
}
