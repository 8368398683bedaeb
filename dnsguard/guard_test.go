package dnsguard

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// testConfig is the allowlist of the table tests. The upstream of
// failover.test lists a silent server first.
func testConfig(up, silent netip.AddrPort) config.DNS {
	pinned := prefixes("10.20.0.0/16", "2001:db8:20::/48")
	return config.DNS{
		Upstreams: []config.Upstream{
			{Zones: []string{"example.com", "x", "y"}, Servers: []netip.AddrPort{up}},
			{Zones: []string{"failover.test"}, Servers: []netip.AddrPort{silent, up}},
		},
		Names: []config.Name{
			{Match: "api.example.com", Ports: tcpPort(443), AnswersIn: pinned},
			{Match: "alias.example.com", Ports: tcpPort(443), AnswersIn: pinned},
			{Match: "alias2.example.com", Ports: tcpPort(444), AnswersIn: pinned},
			{Match: "many.example.com", Ports: tcpPort(443), AnswersIn: pinned},
			{Match: "cdn.example.com", Ports: tcpPort(443)},
			{Match: "xn--mnchen-3ya.example.com", Ports: tcpPort(443), AnswersIn: pinned},
			{Match: "Dot.Example.COM.", Ports: tcpPort(443), AnswersIn: pinned},
			{Match: "*.x", Ports: tcpPort(8883), AnswersIn: prefixes("10.30.0.0/16")},
			{Match: "**.y", Ports: tcpPort(8883), AnswersIn: prefixes("10.30.0.0/16")},
			{Match: "api.failover.test", Ports: tcpPort(443), AnswersIn: pinned},
		},
		TTL:          config.TTL{Min: time.Minute, Max: time.Hour},
		DenyResponse: "refused",
	}
}

// learned is a shorthand for one expected Learned entry.
func learned(addr, pattern string, port uint16, expires time.Duration) Learned {
	return Learned{Addr: netip.MustParseAddr(addr), Ports: tcpPort(port), Expires: expires, Name: pattern}
}

// manyA returns n A records for name in 10.20.1.0/24.
func manyA(name string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s 300 IN A 10.20.1.%d", name, i+1))
	}
	return out
}

// learnedMany is what manyA teaches.
func learnedMany(n int) []Learned {
	var out []Learned
	for i := range n {
		out = append(out, learned(fmt.Sprintf("10.20.1.%d", i+1), "many.example.com", 443, 300*time.Second))
	}
	return out
}

// truncatedOverUDP answers UDP with an empty truncated answer and TCP
// with full.
func truncatedOverUDP(full script, tcpToo bool) script {
	return func(q *dns.Msg, tcp bool) *dns.Msg {
		if tcp && !tcpToo {
			return full(q, tcp)
		}
		m := new(dns.Msg)
		m.SetReply(q)
		m.Truncated = true
		return m
	}
}

// guardCase is one row of TestGuard.
type guardCase struct {
	name      string
	qname     string
	qtype     uint16
	tcp       bool
	from      string // client address; "" is 127.0.0.1
	answer    script
	learnErr  error
	deny      string // deny_response; "" keeps refused
	wantRcode int
	wantTC    bool
	wantLearn []Learned
	wantRRs   []string // nil: not checked
	result    string   // the counted result
	check     func(t *testing.T, up *scripted)
}

func TestGuard(t *testing.T) {
	tests := []guardCase{
		{
			name:  "exact name, pinned answer",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 10.20.0.5"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.5", "api.example.com", 443, 300*time.Second)},
			wantRRs:   normRRs("api.example.com. 300 IN A 10.20.0.5"),
			result:    "allowed",
		},
		{
			name:  "mixed case query keeps its case",
			qname: "API.Example.COM.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 10.20.0.5"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.5", "api.example.com", 443, 300*time.Second)},
			wantRRs:   normRRs("API.Example.COM. 300 IN A 10.20.0.5"),
			result:    "allowed",
		},
		{
			name:  "pattern written with trailing dot and capitals",
			qname: "dot.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "dot.example.com. 300 IN A 10.20.0.6"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.6", "dot.example.com", 443, 300*time.Second)},
			result:    "allowed",
		},
		{
			name:  "CNAME from an allowed name to a name off the list",
			qname: "alias.example.com.", qtype: dns.TypeA,
			answer: answerWith(dns.RcodeSuccess,
				"alias.example.com. 600 IN CNAME target.example.net.",
				"target.example.net. 120 IN A 10.20.0.7"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.7", "alias.example.com", 443, 120*time.Second)},
			wantRRs: normRRs("alias.example.com. 120 IN CNAME target.example.net.",
				"target.example.net. 120 IN A 10.20.0.7"),
			result: "allowed",
		},
		{
			name:  "CNAME to another allowed name: pinned by the original name",
			qname: "alias2.example.com.", qtype: dns.TypeA,
			answer: answerWith(dns.RcodeSuccess,
				"alias2.example.com. 300 IN CNAME api.example.com.",
				"api.example.com. 300 IN A 10.20.0.8"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.8", "alias2.example.com", 444, 300*time.Second)},
			result:    "allowed",
		},
		{
			name:  "CNAME chain leaving the pinned range is rejected",
			qname: "alias.example.com.", qtype: dns.TypeA,
			answer: answerWith(dns.RcodeSuccess,
				"alias.example.com. 300 IN CNAME evil.example.net.",
				"evil.example.net. 300 IN A 203.0.113.7"),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_public_answer",
		},
		{
			name:  "name off the list is refused even if it aliases an allowed one",
			qname: "off.example.com.", qtype: dns.TypeA,
			answer: answerWith(dns.RcodeSuccess,
				"off.example.com. 300 IN CNAME api.example.com.",
				"api.example.com. 300 IN A 10.20.0.5"),
			wantRcode: dns.RcodeRefused,
			result:    "denied",
			check: func(t *testing.T, up *scripted) {
				if n := len(up.queries()); n != 0 {
					t.Errorf("upstream got %d queries for a denied name, want 0", n)
				}
			},
		},
		{
			name:  "out-of-chain records are ignored and not released",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer: answerWith(dns.RcodeSuccess,
				"other.example.com. 300 IN A 203.0.113.9",
				"api.example.com. 300 IN A 10.20.0.5",
				"api.example.com. 300 IN AAAA 2001:db8:20::5"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.5", "api.example.com", 443, 300*time.Second)},
			wantRRs:   normRRs("api.example.com. 300 IN A 10.20.0.5"),
			result:    "allowed",
		},
		{
			name:  "CNAME loop",
			qname: "alias.example.com.", qtype: dns.TypeA,
			answer: answerWith(dns.RcodeSuccess,
				"alias.example.com. 300 IN CNAME b.example.net.",
				"b.example.net. 300 IN CNAME alias.example.com."),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_bad_answer",
		},
		{
			name:  "*.x matches one label",
			qname: "a.x.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "a.x. 300 IN A 10.30.0.1"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.30.0.1", "*.x", 8883, 300*time.Second)},
			result:    "allowed",
		},
		{
			name: "*.x does not match x", qname: "x.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "x. 300 IN A 10.30.0.1"),
			wantRcode: dns.RcodeRefused, result: "denied",
		},
		{
			name: "*.x does not match a.b.x", qname: "a.b.x.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "a.b.x. 300 IN A 10.30.0.1"),
			wantRcode: dns.RcodeRefused, result: "denied",
		},
		{
			name: "*.x does not match evilx", qname: "a.evilx.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "a.evilx. 300 IN A 10.30.0.1"),
			wantRcode: dns.RcodeRefused, result: "denied",
		},
		{
			name:  "**.y matches several labels",
			qname: "a.b.y.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "a.b.y. 300 IN A 10.30.0.2"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.30.0.2", "**.y", 8883, 300*time.Second)},
			result:    "allowed",
		},
		{
			name: "**.y does not match y", qname: "y.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "y. 300 IN A 10.30.0.2"),
			wantRcode: dns.RcodeRefused, result: "denied",
		},
		{
			name:  "punycode name",
			qname: "XN--MNCHEN-3YA.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "xn--mnchen-3ya.example.com. 300 IN A 10.20.0.9"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.9", "xn--mnchen-3ya.example.com", 443, 300*time.Second)},
			wantRRs:   normRRs("XN--MNCHEN-3YA.example.com. 300 IN A 10.20.0.9"),
			result:    "allowed",
		},
		{
			name:  "TTL 0 learned for ttl.min, reply keeps 0",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 0 IN A 10.20.0.5"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.5", "api.example.com", 443, time.Minute)},
			wantRRs:   normRRs("api.example.com. 0 IN A 10.20.0.5"),
			result:    "allowed",
		},
		{
			name:  "TTL 1 learned for ttl.min, reply keeps 1",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 1 IN A 10.20.0.5"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.5", "api.example.com", 443, time.Minute)},
			wantRRs:   normRRs("api.example.com. 1 IN A 10.20.0.5"),
			result:    "allowed",
		},
		{
			name:  "TTL above ttl.max is cut in the reply too",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 86400 IN A 10.20.0.5"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.5", "api.example.com", 443, time.Hour)},
			wantRRs:   normRRs("api.example.com. 3600 IN A 10.20.0.5"),
			result:    "allowed",
		},
		{
			name:  "25 A records in one answer",
			qname: "many.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, manyA("many.example.com.", 25)...),
			wantRcode: dns.RcodeSuccess,
			wantLearn: learnedMany(25),
			wantRRs:   normRRs(manyA("many.example.com.", 25)...),
			result:    "allowed",
		},
		{
			name:  "UDP truncated upstream, then TCP",
			qname: "many.example.com.", qtype: dns.TypeA,
			answer:    truncatedOverUDP(answerWith(dns.RcodeSuccess, manyA("many.example.com.", 25)...), false),
			wantRcode: dns.RcodeSuccess,
			wantLearn: learnedMany(25),
			wantRRs:   normRRs(manyA("many.example.com.", 25)...),
			result:    "allowed",
			check: func(t *testing.T, up *scripted) {
				want := []seenQuery{
					{Name: "many.example.com.", Type: dns.TypeA, UDPSize: 1232},
					{Name: "many.example.com.", Type: dns.TypeA, TCP: true, UDPSize: 1232},
				}
				if diff := cmp.Diff(want, up.queries()); diff != "" {
					t.Errorf("upstream queries (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:  "truncated over TCP too: nothing learned, TC passed on",
			qname: "many.example.com.", qtype: dns.TypeA,
			answer:    truncatedOverUDP(nil, true),
			wantRcode: dns.RcodeSuccess,
			wantTC:    true,
			wantRRs:   []string{},
			result:    "rejected_truncated",
		},
		{
			name:  "pinned name answered with a public address",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer: answerWith(dns.RcodeSuccess,
				"api.example.com. 300 IN A 10.20.0.5",
				"api.example.com. 300 IN A 203.0.113.7"),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_public_answer",
		},
		{
			name:  "pinned name answered outside its range in private space",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 192.168.1.5"),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_private_answer",
		},
		{
			name:  "name without answers_in: public address accepted",
			qname: "cdn.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "cdn.example.com. 300 IN A 203.0.113.10"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("203.0.113.10", "cdn.example.com", 443, 300*time.Second)},
			result:    "allowed",
		},
		{
			name:  "name without answers_in: RFC 1918 rejected",
			qname: "cdn.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "cdn.example.com. 300 IN A 10.1.2.3"),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_private_answer",
		},
		{
			name:  "name without answers_in: CGNAT rejected",
			qname: "cdn.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "cdn.example.com. 300 IN A 100.64.0.1"),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_private_answer",
		},
		{
			name:  "name without answers_in: the gateway's LAN rejected",
			qname: "cdn.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "cdn.example.com. 300 IN A 198.51.100.20"),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_private_answer",
		},
		{
			name:  "name without answers_in: ULA rejected",
			qname: "cdn.example.com.", qtype: dns.TypeAAAA,
			answer:    answerWith(dns.RcodeSuccess, "cdn.example.com. 300 IN AAAA fd00::1"),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_private_answer",
		},
		{
			name:  "IPv4-mapped IPv6 judged and learned as IPv4",
			qname: "api.example.com.", qtype: dns.TypeAAAA,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 300 IN AAAA ::ffff:10.20.0.11"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.11", "api.example.com", 443, 300*time.Second)},
			result:    "allowed",
		},
		{
			name:  "IPv4-mapped loopback rejected",
			qname: "cdn.example.com.", qtype: dns.TypeAAAA,
			answer:    answerWith(dns.RcodeSuccess, "cdn.example.com. 300 IN AAAA ::ffff:127.0.0.1"),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_private_answer",
		},
		{
			name:  "AAAA in range",
			qname: "api.example.com.", qtype: dns.TypeAAAA,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 300 IN AAAA 2001:db8:20::5"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("2001:db8:20::5", "api.example.com", 443, 300*time.Second)},
			result:    "allowed",
		},
		{
			name:  "upstream timeout, then failover to the next server",
			qname: "api.failover.test.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "api.failover.test. 300 IN A 10.20.0.12"),
			wantRcode: dns.RcodeSuccess,
			wantLearn: []Learned{learned("10.20.0.12", "api.failover.test", 443, 300*time.Second)},
			result:    "allowed",
		},
		{
			name:  "every upstream server fails",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeServerFailure),
			wantRcode: dns.RcodeServerFailure,
			result:    "upstream_error",
		},
		{
			name:  "upstream NXDOMAIN passed on",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeNameError),
			wantRcode: dns.RcodeNameError,
			result:    "forwarded",
		},
		{
			name:  "other types forwarded without address records",
			qname: "api.example.com.", qtype: dns.TypeTXT,
			answer: answerWith(dns.RcodeSuccess,
				`api.example.com. 300 IN TXT "v=1"`,
				"api.example.com. 300 IN A 203.0.113.7"),
			wantRcode: dns.RcodeSuccess,
			wantRRs:   normRRs(`api.example.com. 300 IN TXT "v=1"`),
			result:    "forwarded",
		},
		{
			name:  "answer to another question",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer: func(q *dns.Msg, _ bool) *dns.Msg {
				m := new(dns.Msg)
				m.SetReply(q)
				m.Question[0].Name = "other.example.com."
				m.Answer = mustRRs("other.example.com. 300 IN A 10.20.0.5")
				return m
			},
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_bad_answer",
		},
		{
			name:  "learn failing gives SERVFAIL",
			qname: "api.example.com.", qtype: dns.TypeA,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 10.20.0.5"),
			learnErr:  errors.New("map full"),
			wantRcode: dns.RcodeServerFailure,
			result:    "rejected_learn_failed",
		},
		{
			name:  "client outside the ACL",
			qname: "api.example.com.", qtype: dns.TypeA, from: "127.0.0.2",
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 10.20.0.5"),
			wantRcode: dns.RcodeRefused,
			result:    "refused",
		},
		{
			name:  "client outside the ACL over TCP",
			qname: "api.example.com.", qtype: dns.TypeA, from: "127.0.0.2", tcp: true,
			answer:    answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 10.20.0.5"),
			wantRcode: dns.RcodeRefused,
			result:    "refused",
		},
		{
			name:  "deny_response nxdomain",
			qname: "nope.example.com.", qtype: dns.TypeA, deny: "nxdomain",
			answer:    answerWith(dns.RcodeSuccess, "nope.example.com. 300 IN A 10.20.0.5"),
			wantRcode: dns.RcodeNameError,
			result:    "denied",
		},
		{
			name:  "ANY is not implemented",
			qname: "api.example.com.", qtype: dns.TypeANY,
			answer:    answerWith(dns.RcodeSuccess),
			wantRcode: dns.RcodeNotImplemented,
			result:    "malformed",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runGuardCase(t, tt)
		})
	}
}

// runGuardCase runs one row of TestGuard against a fresh upstream and
// guard.
func runGuardCase(t *testing.T, tt guardCase) {
	up := startUpstream(t, tt.answer)
	silent := startUpstream(t, nil)
	cfg := testConfig(up.addr, silent.addr)
	if tt.deny != "" {
		cfg.DenyResponse = tt.deny
	}
	learner := &fakeLearner{err: tt.learnErr}
	r := startGuard(t, cfg, Options{
		Learner:         learner,
		AllowClient:     func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") },
		LANPrefixes:     prefixes("198.51.100.0/24"),
		UpstreamTimeout: 300 * time.Millisecond,
	})

	reply, err := r.ask(t, query(tt.qname, tt.qtype, 0), tt.tcp, tt.from)
	if err != nil {
		t.Fatalf("query: %v", err)
	}

	got, _ := learner.take()
	if diff := cmp.Diff(tt.wantLearn, got, cmpAddrs); diff != "" {
		t.Errorf("learned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(rcodeName(tt.wantRcode), rcodeName(reply.Rcode)); diff != "" {
		t.Errorf("rcode (-want +got):\n%s", diff)
	}
	if reply.Truncated != tt.wantTC {
		t.Errorf("TC = %v, want %v", reply.Truncated, tt.wantTC)
	}
	if tt.wantRRs != nil {
		if diff := cmp.Diff(tt.wantRRs, rrStrings(reply.Answer)); diff != "" {
			t.Errorf("answer (-want +got):\n%s", diff)
		}
	}
	if len(reply.Question) == 1 && reply.Question[0].Name != tt.qname {
		t.Errorf("reply question %q, want the client's spelling %q", reply.Question[0].Name, tt.qname)
	}
	if diff := cmp.Diff(map[string]uint64{tt.result: 1}, nonZero(r.g.Counts())); diff != "" {
		t.Errorf("counted results (-want +got):\n%s", diff)
	}
	if tt.check != nil {
		tt.check(t, up)
	}
}

// rcodeName names an rcode, for readable diffs.
func rcodeName(rc int) string {
	return dns.RcodeToString[rc]
}

// rrStrings returns records in presentation form.
func rrStrings(rrs []dns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}

// nonZero keeps the counters that moved.
func nonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// TestTruncatedClientRetriesOverTCP checks that a UDP client without
// EDNS gets TC for an answer over 512 bytes, and the whole answer over
// TCP.
func TestTruncatedClientRetriesOverTCP(t *testing.T) {
	var records []string
	for i := range 25 {
		records = append(records, fmt.Sprintf("many.example.com. 300 IN AAAA 2001:db8:20::%x", i+1))
	}
	up := startUpstream(t, answerWith(dns.RcodeSuccess, records...))
	cfg := testConfig(up.addr, up.addr)
	r := startGuard(t, cfg, Options{Learner: &fakeLearner{}})

	udp, err := r.ask(t, query("many.example.com.", dns.TypeAAAA, 0), false, "")
	if err != nil {
		t.Fatalf("udp query: %v", err)
	}
	tcp, err := r.ask(t, query("many.example.com.", dns.TypeAAAA, 0), true, "")
	if err != nil {
		t.Fatalf("tcp query: %v", err)
	}

	got := []any{udp.Truncated, len(udp.Answer) < 25, tcp.Truncated, len(tcp.Answer)}
	if diff := cmp.Diff([]any{true, true, false, 25}, got); diff != "" {
		t.Errorf("[udp TC, udp partial, tcp TC, tcp records] (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(rrStrings(tcp.Answer)[0], "many.example.com.") {
		t.Errorf("tcp answer starts with %q", rrStrings(tcp.Answer)[0])
	}
}
