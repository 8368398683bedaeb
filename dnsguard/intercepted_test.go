package dnsguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/internal/testenv"
)

// TestJudgeIntercepted: queries and answers of other clients pass only
// between a client and the name's upstream, for allowed names, and an
// answer's addresses are learned before it passes.
func TestJudgeIntercepted(t *testing.T) {
	up := netip.MustParseAddrPort("10.20.0.2:53")
	other := netip.MustParseAddrPort("192.0.2.53:53")
	client := netip.MustParseAddrPort("10.10.0.2:41000")

	answer := func(name string, records ...string) []byte {
		m := query(name, dns.TypeA, 0)
		m.Response, m.Answer = true, mustRRs(records...)
		return pack(t, m)
	}
	ask := func(name string, qtype uint16) []byte { return pack(t, query(name, qtype, 0)) }

	tests := []struct {
		name    string
		src     netip.AddrPort
		dst     netip.AddrPort
		payload []byte
		want    InterceptVerdict
		learned int
	}{
		{"allowed query to its upstream", client, up, ask("api.example.com.", dns.TypeA),
			InterceptVerdict{Accept: true, Kind: KindQuery, Result: "allowed"}, 0},
		{"allowed query, mixed case", client, up, ask("API.Example.com.", dns.TypeAAAA),
			InterceptVerdict{Accept: true, Kind: KindQuery, Result: "allowed"}, 0},
		{"allowed query to another server", client, other, ask("api.example.com.", dns.TypeA),
			InterceptVerdict{Kind: KindQuery, Result: ResultWrongServer}, 0},
		{"allowed query to the upstream's address on another port", client, netip.AddrPortFrom(up.Addr(), 5353), ask("api.example.com.", dns.TypeA),
			InterceptVerdict{Kind: KindQuery, Result: ResultWrongServer}, 0},
		{"name off the list", client, up, ask("evil.example.com.", dns.TypeA),
			InterceptVerdict{Kind: KindQuery, Result: "denied"}, 0},
		{"long random subdomain of an allowed zone", client, up, ask("a0b1c2d3e4f5.a0b1c2d3e4f5.x.", dns.TypeTXT),
			InterceptVerdict{Kind: KindQuery, Result: "denied"}, 0},
		{"ANY", client, up, ask("api.example.com.", dns.TypeANY),
			InterceptVerdict{Kind: KindQuery, Result: "malformed"}, 0},
		{"garbage query", client, up, []byte{0x12, 0x34, 0x01, 0x00, 0xff},
			InterceptVerdict{Kind: KindQuery, Result: "malformed"}, 0},
		{"garbage answer", up, client, []byte{0x12, 0x34, 0x81, 0x80, 0xff},
			InterceptVerdict{Kind: KindAnswer, Result: "malformed"}, 0},
		{"answer from the upstream", up, client, answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15"),
			InterceptVerdict{Accept: true, Kind: KindAnswer, Result: "allowed"}, 1},
		{"answer from another server", other, client, answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15"),
			InterceptVerdict{Kind: KindAnswer, Result: ResultWrongServer}, 0},
		{"answer outside answers_in", up, client, answer("api.example.com.", "api.example.com. 300 IN A 192.0.2.80"),
			InterceptVerdict{Kind: KindAnswer, Result: "rejected_public_answer"}, 0},
		{"answer for a name off the list", up, client, answer("evil.example.com.", "evil.example.com. 300 IN A 10.20.8.15"),
			InterceptVerdict{Kind: KindAnswer, Result: "denied"}, 0},
		{"answer without addresses", up, client, answer("api.example.com."),
			InterceptVerdict{Accept: true, Kind: KindAnswer, Result: "forwarded"}, 0},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			learner := &fakeLearner{}
			g, err := New(testConfig(up, other), Options{Learner: learner})
			if err != nil {
				t.Fatal(err)
			}

			got := g.JudgeIntercepted(context.Background(), Intercepted{Src: tc.src, Dst: tc.dst, Payload: tc.payload})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
			if learned, _ := learner.take(); len(learned) != tc.learned {
				t.Errorf("learned %v, want %d entries", learned, tc.learned)
			}
			if n := g.InterceptedCounts()[got.Kind][got.Result]; n != 1 {
				t.Errorf("counted %d under %s/%s, want 1", n, got.Kind, got.Result)
			}
		})
	}
}

// TestJudgeInterceptedLearnFails: an answer whose addresses the data plane
// did not take is refused, so the client never gets them.
func TestJudgeInterceptedLearnFails(t *testing.T) {
	up := netip.MustParseAddrPort("10.20.0.2:53")
	learner := &fakeLearner{err: errors.New("map full")}
	g, err := New(testConfig(up, up), Options{Learner: learner})
	if err != nil {
		t.Fatal(err)
	}

	m := query("api.example.com.", dns.TypeA, 0)
	m.Response, m.Answer = true, mustRRs("api.example.com. 300 IN A 10.20.8.15")
	got := g.JudgeIntercepted(context.Background(), Intercepted{Src: up, Dst: netip.MustParseAddrPort("10.10.0.2:41000"), Payload: pack(t, m)})
	if got.Accept || got.Result != "rejected_learn_failed" {
		t.Errorf("verdict %+v, want refused as rejected_learn_failed", got)
	}
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMarkedDialer: the guard's upstream sockets carry the mark that lets
// them past transparent mode's queue.
func TestMarkedDialer(t *testing.T) {
	testenv.RequireRoot(t) // SO_MARK needs CAP_NET_ADMIN

	conn, err := markedDialer(time.Second, 0x4577).Dial("udp", "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mark int
	var gerr error
	raw.Control(func(fd uintptr) { mark, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
	if gerr != nil || mark != 0x4577 {
		t.Errorf("socket mark %#x (%v), want 0x4577", mark, gerr)
	}
}
