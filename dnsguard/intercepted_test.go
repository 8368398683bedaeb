package dnsguard

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// TestJudgeIntercepted: queries and answers of other clients pass only
// between a client and the name's upstream, for allowed names, and an
// answer's addresses are learned before it passes.
func TestJudgeIntercepted(t *testing.T) {
	up := netip.MustParseAddrPort("10.20.0.2:53")
	other := netip.MustParseAddrPort("192.0.2.53:53")
	client := netip.MustParseAddrPort("10.10.0.2:41000")

	// Answers carry ID 7 and answer an A query for their name; asked
	// sends that query from client to up first, as the queue would.
	answer := func(name string, records ...string) []byte {
		m := query(name, dns.TypeA, 0)
		m.Id, m.Response, m.Answer = 7, true, mustRRs(records...)
		return pack(t, m)
	}
	ask := func(name string, qtype uint16) []byte { return pack(t, query(name, qtype, 0)) }
	asked := func(name string) *Intercepted {
		q := query(name, dns.TypeA, 0)
		q.Id = 7
		return &Intercepted{Src: client, Dst: up, Payload: pack(t, q)}
	}

	tests := []struct {
		name    string
		src     netip.AddrPort
		dst     netip.AddrPort
		payload []byte
		want    InterceptVerdict
		learned int
		before  []*Intercepted // judged first, in order
	}{
		{"allowed query to its upstream", client, up, ask("api.example.com.", dns.TypeA),
			InterceptVerdict{Accept: true, Kind: KindQuery, Result: "allowed"}, 0, nil},
		{"allowed query, mixed case", client, up, ask("API.Example.com.", dns.TypeAAAA),
			InterceptVerdict{Accept: true, Kind: KindQuery, Result: "allowed"}, 0, nil},
		{"allowed query to another server", client, other, ask("api.example.com.", dns.TypeA),
			InterceptVerdict{Kind: KindQuery, Result: ResultWrongServer}, 0, nil},
		{"allowed query to the upstream's address on another port", client, netip.AddrPortFrom(up.Addr(), 5353), ask("api.example.com.", dns.TypeA),
			InterceptVerdict{Kind: KindQuery, Result: ResultWrongServer}, 0, nil},
		{"name off the list", client, up, ask("evil.example.com.", dns.TypeA),
			InterceptVerdict{Kind: KindQuery, Result: "denied"}, 0, nil},
		{"long random subdomain of an allowed zone", client, up, ask("a0b1c2d3e4f5.a0b1c2d3e4f5.x.", dns.TypeTXT),
			InterceptVerdict{Kind: KindQuery, Result: "denied"}, 0, nil},
		{"ANY", client, up, ask("api.example.com.", dns.TypeANY),
			InterceptVerdict{Kind: KindQuery, Result: "malformed"}, 0, nil},
		{"garbage query", client, up, []byte{0x12, 0x34, 0x01, 0x00, 0xff},
			InterceptVerdict{Kind: KindQuery, Result: "malformed"}, 0, nil},
		{"garbage answer", up, client, []byte{0x12, 0x34, 0x81, 0x80, 0xff},
			InterceptVerdict{Kind: KindAnswer, Result: "malformed"}, 0, nil},
		{"answer from the upstream", up, client, answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15"),
			InterceptVerdict{Accept: true, Kind: KindAnswer, Result: "allowed"}, 1, []*Intercepted{asked("api.example.com.")}},
		{"answer that came in on a LAN interface", up, client, answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15"),
			InterceptVerdict{Kind: KindAnswer, Result: ResultFromLAN}, 0, []*Intercepted{asked("api.example.com.")}},
		{"answer to no query (forged)", up, client, answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15"),
			InterceptVerdict{Kind: KindAnswer, Result: ResultUnsolicited}, 0, nil},
		{"answer to another client's query", up, netip.MustParseAddrPort("10.10.0.3:41000"), answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15"),
			InterceptVerdict{Kind: KindAnswer, Result: ResultUnsolicited}, 0, []*Intercepted{asked("api.example.com.")}},
		{"second answer to one query", up, client, answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.16"),
			InterceptVerdict{Kind: KindAnswer, Result: ResultUnsolicited}, 0, []*Intercepted{
				asked("api.example.com."), {Src: up, Dst: client, Payload: answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15")}}},
		{"answer from another server", other, client, answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15"),
			InterceptVerdict{Kind: KindAnswer, Result: ResultWrongServer}, 0, nil},
		{"answer outside answers_in", up, client, answer("api.example.com.", "api.example.com. 300 IN A 192.0.2.80"),
			InterceptVerdict{Kind: KindAnswer, Result: "rejected_public_answer"}, 0, []*Intercepted{asked("api.example.com.")}},
		{"answer for a name off the list", up, client, answer("evil.example.com.", "evil.example.com. 300 IN A 10.20.8.15"),
			InterceptVerdict{Kind: KindAnswer, Result: "denied"}, 0, nil},
		{"answer with an address off the CNAME chain", up, client, answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15", "other.example.com. 300 IN A 10.20.8.16"),
			InterceptVerdict{Kind: KindAnswer, Result: "rejected_bad_answer"}, 0, []*Intercepted{asked("api.example.com.")}},
		{"answer with an address in the additional section", up, client, withExtra(t, answer("api.example.com.", "api.example.com. 300 IN A 10.20.8.15"), "ns.example.com. 300 IN A 10.10.0.7"),
			InterceptVerdict{Kind: KindAnswer, Result: "rejected_bad_answer"}, 0, []*Intercepted{asked("api.example.com.")}},
		{"answer with more addresses than the cap", up, client, answer("api.example.com.", manyA("api.example.com.", DefaultMaxAddrsPerName+1)...),
			InterceptVerdict{Kind: KindAnswer, Result: "rejected_bad_answer"}, 0, []*Intercepted{asked("api.example.com.")}},
		{"answer without addresses", up, client, answer("api.example.com."),
			InterceptVerdict{Accept: true, Kind: KindAnswer, Result: "forwarded"}, 0, []*Intercepted{asked("api.example.com.")}},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			learner := &fakeLearner{}
			g, err := New(testConfig(up, other), Options{Learner: learner})
			if err != nil {
				t.Fatal(err)
			}

			for _, p := range tc.before {
				g.JudgeIntercepted(context.Background(), *p)
			}
			learner.take()
			was := g.InterceptedCounts()[tc.want.Kind][tc.want.Result]
			fromLAN := strings.Contains(tc.name, "LAN interface")
			got := g.JudgeIntercepted(context.Background(), Intercepted{Src: tc.src, Dst: tc.dst, Payload: tc.payload, FromLAN: fromLAN})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
			if learned, _ := learner.take(); len(learned) != tc.learned {
				t.Errorf("learned %v, want %d entries", learned, tc.learned)
			}
			if n := g.InterceptedCounts()[tc.want.Kind][tc.want.Result]; n != was+1 {
				t.Errorf("counted %d under %s/%s, want %d", n, tc.want.Kind, tc.want.Result, was+1)
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

	client := netip.MustParseAddrPort("10.10.0.2:41000")
	m := query("api.example.com.", dns.TypeA, 0)
	g.JudgeIntercepted(context.Background(), Intercepted{Src: client, Dst: up, Payload: pack(t, m)})
	m.Response, m.Answer = true, mustRRs("api.example.com. 300 IN A 10.20.8.15")
	got := g.JudgeIntercepted(context.Background(), Intercepted{Src: up, Dst: client, Payload: pack(t, m)})
	if got.Accept || got.Result != "rejected_learn_failed" {
		t.Errorf("verdict %+v, want refused as rejected_learn_failed", got)
	}
}

// withExtra adds records to the additional section of a packed message.
func withExtra(t *testing.T, b []byte, records ...string) []byte {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	m.Extra = append(m.Extra, mustRRs(records...)...)
	return pack(t, m)
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSocketControl: every socket toward an upstream goes through
// Options.SocketControl, and one it fails on is not used: the query gets
// SERVFAIL, never an answer from an unmarked socket.
func TestSocketControl(t *testing.T) {
	up := startUpstream(t, answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 10.20.8.15"))
	var calls atomic.Int32
	fail := atomic.Bool{}
	control := func(network, address string, _ syscall.RawConn) error {
		calls.Add(1)
		if address != up.addr.String() {
			t.Errorf("control for %s %s, want the upstream %s", network, address, up.addr)
		}
		if fail.Load() {
			return errors.New("cannot mark")
		}
		return nil
	}
	r := startGuard(t, testConfig(up.addr, up.addr), Options{Learner: &fakeLearner{}, SocketControl: control})

	reply, err := r.ask(t, query("api.example.com.", dns.TypeA, 0), false, "")
	if err != nil || reply.Rcode != dns.RcodeSuccess || calls.Load() == 0 {
		t.Fatalf("with a working control: %v %v, %d calls", reply, err, calls.Load())
	}

	fail.Store(true)
	r.g.fw.pool.closeIdle() // no pooled socket: the next query dials
	reply, err = r.ask(t, query("api.example.com.", dns.TypeAAAA, 0), false, "")
	if err != nil || reply.Rcode != dns.RcodeServerFailure {
		t.Errorf("with a failing control: %v %v, want SERVFAIL", reply, err)
	}
}
