package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

const learnedPort = sb.LearnedPort

// TestDNSGuardOpensLearnedDestinations: the OT host resolves through the
// guard and connects at once, 200 times, each time to a new address; before
// the answer the address is closed; names off the list are refused and an
// answer outside answers_in is rejected; an entry expires on the kernel
// clock while the connection it opened goes on; a restart keeps the
// learned entries.
func TestDNSGuardOpensLearnedDestinations(t *testing.T) {
	g := newGateway(t, demopolicy.Params{TTLMin: "1s", TTLMax: "2s"})
	g.start()

	g.expect([]probe{{"learned address before any answer", sb.OT, "tcp-echo", sb.Addr("198.18.1.200", learnedPort), false}})

	for i := 1; i <= 200; i++ {
		name := fmt.Sprintf("h%d.partner.test", i)
		resp, err := g.sb.Resolve(sb.OT, name)
		if err != nil || resp.Rcode != dns.RcodeSuccess || sb.FirstA(resp) == "" {
			t.Fatalf("resolve %s: %v %v", name, err, resp)
		}
		// No pause between the answer and the connection.
		if err := g.sb.EchoTCP(sb.OT, sb.Addr(sb.FirstA(resp), learnedPort), 2*time.Second); err != nil {
			t.Fatalf("iteration %d: connect to %s right after the answer: %v", i, sb.FirstA(resp), err)
		}
	}

	for _, tc := range []struct {
		name  string
		rcode int
	}{
		{"evil.example.test", dns.RcodeRefused},
		{"spoof.partner.test", dns.RcodeServerFailure},
	} {
		resp, err := g.sb.Resolve(sb.OT, tc.name)
		if err != nil || resp.Rcode != tc.rcode {
			t.Errorf("resolve %s: rcode %v (%v), want %s", tc.name, rcodeOf(resp), err, dns.RcodeToString[tc.rcode])
		}
	}

	t.Run("expiry", func(t *testing.T) {
		resp, err := g.sb.Resolve(sb.OT, "short.partner.test")
		if err != nil || sb.FirstA(resp) == "" {
			t.Fatalf("resolve short.partner.test: %v %v", err, resp)
		}
		open, err := g.dialTCP(sb.OT, sb.Addr(sb.FirstA(resp), learnedPort), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer open.Close()
		time.Sleep(3 * time.Second) // past ttl.max
		roundTrip(t, open, "connection opened before the expiry", true)
		g.expect([]probe{{"new connection after the expiry", sb.OT, "tcp-echo", sb.Addr(sb.FirstA(resp), learnedPort), false}})
	})

	t.Run("restart keeps learned entries", func(t *testing.T) {
		resp, err := g.sb.Resolve(sb.OT, "h7.partner.test")
		if err != nil || sb.FirstA(resp) == "" {
			t.Fatalf("resolve: %v %v", err, resp)
		}
		g.kill()
		g.start()
		g.expect([]probe{{"learned before the restart", sb.OT, "tcp-echo", sb.Addr(sb.FirstA(resp), learnedPort), true}})
		if !strings.Contains(g.daemon.Tail(50), "restored=1") {
			t.Errorf("the guard did not restore the kernel's entry:\n%s", g.daemon.Tail(10))
		}
	})
}

// TestDNSReloadRestartsGuard: a reload that changes the dns section takes
// effect without a restart: here the TTL bounds.
func TestDNSReloadRestartsGuard(t *testing.T) {
	g := newGateway(t, demopolicy.Params{TTLMin: "1s", TTLMax: "2s"})
	g.start()

	ttl := func() uint32 {
		t.Helper()
		resp, err := g.sb.Resolve(sb.OT, "h9.partner.test")
		if err != nil || len(resp.Answer) == 0 {
			t.Fatalf("resolve: %v %v", err, resp)
		}
		return resp.Answer[0].Header().Ttl
	}
	if got := ttl(); got > 2 {
		t.Fatalf("TTL %d with ttl.max 2s", got)
	}

	rewritePolicy(t, g, demopolicy.Params{TTLMin: "30s", TTLMax: "45s"})
	if out, err := g.cli("reload", "-c", g.cfgPath); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if got := ttl(); got < 30 || got > 45 {
		t.Errorf("TTL %d after reloading with ttl 30s..45s", got)
	}
}

func rcodeOf(m *dns.Msg) string {
	if m == nil {
		return "none"
	}
	return dns.RcodeToString[m.Rcode]
}
