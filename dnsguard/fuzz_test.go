package dnsguard

import (
	"context"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// fuzzGuard is a guard whose upstream is replaced by the fuzzer's bytes.
func fuzzGuard(t testing.TB) *Guard {
	t.Helper()
	ap := netip.MustParseAddrPort("127.0.0.1:9")
	g, err := New(testConfig(ap, ap), Options{Learner: &fakeLearner{}, LANPrefixes: prefixes("198.51.100.0/24")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g
}

// FuzzDecide drives the parse-and-decide path with arbitrary query bytes
// and arbitrary upstream answer bytes: it must never panic, and every
// reply must pack.
func FuzzDecide(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.query, s.answer, s.keepID)
	}
	g := fuzzGuard(f)
	client := netip.MustParseAddr("127.0.0.1")

	f.Fuzz(func(t *testing.T, queryBytes, answerBytes []byte, keepID bool) {
		req := new(dns.Msg)
		if err := req.Unpack(queryBytes); err != nil {
			return // miekg/dns answers FORMERR before the guard sees it
		}
		g.forward = func(_ context.Context, _ *upstream, q *dns.Msg) (*dns.Msg, error) {
			resp := new(dns.Msg)
			if err := resp.Unpack(answerBytes); err != nil {
				return nil, err
			}
			if !keepID {
				resp.Id = q.Id // what the client library checks
			}
			return resp, nil
		}

		for _, tcp := range []bool{false, true} {
			reply := g.resolve(context.Background(), client, req.Copy(), tcp)
			if !tcp {
				reply.Truncate(clientUDPSize(req))
			}
			if _, err := reply.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, reply)
			}
		}
	})
}

// fuzzSeed is one starting point of FuzzDecide.
type fuzzSeed struct {
	query, answer []byte
	keepID        bool
}

// fuzzSeeds builds seeds from the cases of the table tests.
func fuzzSeeds() []fuzzSeed {
	cases := []struct {
		name    string
		qtype   uint16
		records []string
	}{
		{"api.example.com.", dns.TypeA, []string{"api.example.com. 300 IN A 10.20.0.5"}},
		{"API.example.com.", dns.TypeAAAA, []string{"api.example.com. 300 IN AAAA ::ffff:10.20.0.5"}},
		{"alias.example.com.", dns.TypeA, []string{"alias.example.com. 300 IN CNAME t.example.net.", "t.example.net. 0 IN A 10.20.0.7"}},
		{"alias.example.com.", dns.TypeA, []string{"alias.example.com. 300 IN CNAME b.", "b. 1 IN CNAME alias.example.com."}},
		{"cdn.example.com.", dns.TypeA, []string{"cdn.example.com. 300 IN A 192.168.1.1"}},
		{"a.b.y.", dns.TypeTXT, []string{`a.b.y. 300 IN TXT "x"`, "a.b.y. 300 IN A 10.30.0.1"}},
	}

	var out []fuzzSeed
	for _, c := range cases {
		q := query(c.name, c.qtype, 4096)
		resp := new(dns.Msg)
		resp.SetReply(q)
		resp.Answer = mustRRs(c.records...)
		qb, _ := q.Pack()
		ab, _ := resp.Pack()
		out = append(out, fuzzSeed{qb, ab, false})
	}
	return out
}

// FuzzJudgeIntercepted drives transparent mode's judgement with arbitrary
// message bytes, as a query from a client and as an answer from the
// upstream: it must never panic, and an accepted answer must be one that
// parses.
func FuzzJudgeIntercepted(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.query)
		f.Add(s.answer)
	}
	g := fuzzGuard(f)
	up := netip.MustParseAddrPort("127.0.0.1:9")
	client := netip.MustParseAddrPort("10.10.0.2:41000")

	f.Fuzz(func(t *testing.T, payload []byte) {
		g.JudgeIntercepted(context.Background(), Intercepted{Src: client, Dst: up, Payload: payload})
		v := g.JudgeIntercepted(context.Background(), Intercepted{Src: up, Dst: client, Payload: payload})
		if v.Accept && v.Kind == KindAnswer {
			if err := new(dns.Msg).Unpack(payload); err != nil {
				t.Fatalf("accepted an answer that does not parse: %v", err)
			}
		}
	})
}
