package dnsguard

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Intercepted is a DNS message that crossed the gateway, or left it from
// a socket other than the guard's, and was queued for a verdict
// (transparent mode). Src and Dst are the datagram's addresses.
type Intercepted struct {
	Src, Dst netip.AddrPort
	Payload  []byte // the UDP payload: one DNS message
	// FromLAN is set when the datagram came in on a LAN interface. An
	// answer never does: upstreams sit behind the tunnel or an uplink,
	// so one from the LAN is forged, whatever its source address says.
	FromLAN bool
}

// Kinds of intercepted messages, the values of the label "kind".
const (
	KindQuery  = "query"
	KindAnswer = "answer"
)

// InterceptVerdict is what the guard makes of an intercepted message.
// The message itself is never changed: it passes whole or not at all.
type InterceptVerdict struct {
	Accept bool
	Kind   string // KindQuery or KindAnswer
	Result string // a value of edgeward_dns_queries_total's "result", or "wrong_server"
}

// Results of intercepted messages besides those of the guard's own
// queries: a message between a client and a server that is not an
// upstream of the name asked for, and an answer to no query the guard let
// through (forged, late, or a second answer to one query).
const (
	ResultWrongServer = "wrong_server"
	ResultUnsolicited = "unsolicited"
	ResultFromLAN     = "from_lan"
)

// interceptResults are the results an intercepted message can have, for
// counting with a fixed label set.
var interceptResults = []string{
	resultAllowed.String(), resultForwarded.String(), resultDenied.String(), resultMalformed.String(),
	ResultWrongServer, ResultUnsolicited, ResultFromLAN, resultPublicAnswer.String(), resultPrivateAnswer.String(), resultBadAnswer.String(),
	resultTruncated.String(), resultLearnFailed.String(),
}

// interceptCounts counts intercepted messages by kind and result.
type interceptCounts struct {
	query, answer map[string]*atomic.Uint64
}

func newInterceptCounts() interceptCounts {
	c := interceptCounts{query: map[string]*atomic.Uint64{}, answer: map[string]*atomic.Uint64{}}
	for _, r := range interceptResults {
		c.query[r], c.answer[r] = new(atomic.Uint64), new(atomic.Uint64)
	}
	return c
}

func (c interceptCounts) add(v InterceptVerdict) {
	m := c.query
	if v.Kind == KindAnswer {
		m = c.answer
	}
	m[v.Result].Add(1)
}

// JudgeIntercepted decides on an intercepted DNS message, by the rules
// the guard's own resolver follows:
//
//   - a query passes when its name is on the allowlist and it goes to an
//     upstream server of that name's zone;
//   - an answer passes when it answers such a query the guard let through
//     (same client, server, ID and question; within pendingLifetime), and
//     its address records pass the same pinning as the guard's own
//     answers; its addresses are in the data plane before JudgeIntercepted
//     returns, so the client never holds an address the kernel does not.
//
// Everything else is refused: another server, a name off the list, a
// message that does not parse, an answer the learner could not take. It
// is safe for concurrent use and on any bytes.
func (g *Guard) JudgeIntercepted(ctx context.Context, p Intercepted) InterceptVerdict {
	v := g.judgeIntercepted(ctx, p)
	g.intercepted.add(v)
	return v
}

func (g *Guard) judgeIntercepted(ctx context.Context, p Intercepted) InterceptVerdict {
	msg := new(dns.Msg)
	if err := msg.Unpack(p.Payload); err != nil {
		return InterceptVerdict{Kind: kindOfPayload(p.Payload), Result: resultMalformed.String()}
	}
	if msg.Response {
		return g.judgeInterceptedAnswer(ctx, p, msg)
	}
	return g.judgeInterceptedQuery(p, msg)
}

// kindOfPayload reads the QR bit of a message that does not parse.
func kindOfPayload(b []byte) string {
	if len(b) > 2 && b[2]&0x80 != 0 {
		return KindAnswer
	}
	return KindQuery
}

func (g *Guard) judgeInterceptedQuery(p Intercepted, q *dns.Msg) InterceptVerdict {
	refuse := func(r result) InterceptVerdict { return InterceptVerdict{Kind: KindQuery, Result: r.String()} }
	if checkQuery(q) != dns.RcodeSuccess {
		return refuse(resultMalformed)
	}
	name := q.Question[0].Name
	if g.match.Match(name) == nil {
		return refuse(resultDenied)
	}
	if !g.isUpstreamOf(name, p.Dst) {
		return InterceptVerdict{Kind: KindQuery, Result: ResultWrongServer}
	}
	g.pending.add(newPendingKey(p.Src, p.Dst, q.Id, q.Question[0].Qtype, name), g.opts.Now())
	return InterceptVerdict{Accept: true, Kind: KindQuery, Result: resultAllowed.String()}
}

func (g *Guard) judgeInterceptedAnswer(ctx context.Context, p Intercepted, resp *dns.Msg) InterceptVerdict {
	refuse := func(r result) InterceptVerdict { return InterceptVerdict{Kind: KindAnswer, Result: r.String()} }
	if p.FromLAN {
		return InterceptVerdict{Kind: KindAnswer, Result: ResultFromLAN}
	}
	if len(resp.Question) != 1 || resp.Opcode != dns.OpcodeQuery {
		return refuse(resultMalformed)
	}
	name := resp.Question[0].Name
	r := g.match.Match(name)
	if r == nil {
		return refuse(resultDenied)
	}
	if !g.isUpstreamOf(name, p.Src) {
		return InterceptVerdict{Kind: KindAnswer, Result: ResultWrongServer}
	}
	if !g.pending.take(newPendingKey(p.Dst, p.Src, resp.Id, resp.Question[0].Qtype, name), g.opts.Now()) {
		return InterceptVerdict{Kind: KindAnswer, Result: ResultUnsolicited}
	}

	// The answer is judged as the answer to the query it echoes.
	req := new(dns.Msg)
	req.Id, req.Question = resp.Id, resp.Question
	answered := time.Now()
	v := g.judge(req, r, resp)
	if v.reason == "" {
		v = unjudgedAddrs(resp, v)
	}
	if v.reason != "" {
		g.event(Event{Reason: v.reason, Pattern: r.Pattern, Name: name, Client: p.Dst.Addr(), Addr: v.addr})
		return refuse(v.res)
	}
	if len(v.addrs) > 0 {
		if err := g.learn(ctx, r, name, v); err != nil {
			g.event(Event{Reason: ReasonLearnFailed, Pattern: r.Pattern, Name: name, Client: p.Dst.Addr(), Err: err})
			return refuse(resultLearnFailed)
		}
		g.learnDur.Observe(time.Since(answered).Seconds())
	}
	return InterceptVerdict{Accept: true, Kind: KindAnswer, Result: v.res.String()}
}

// unjudgedAddrs refuses an answer that carries an address record the
// verdict v does not accept, in any section: one off the CNAME chain,
// beyond the per-pattern cap, or in the authority or additional section.
// The guard's own listener leaves those out of its reply; transparent
// mode cannot change the answer, so it drops it whole, and the client
// never holds an address the data plane does not know.
func unjudgedAddrs(resp *dns.Msg, v verdict) verdict {
	for _, section := range [][]dns.RR{resp.Answer, resp.Ns, resp.Extra} {
		for _, rr := range section {
			a, ok := recordAddr(rr)
			if ok && !containsAddr(v.addrs, a) {
				return reject(ReasonBadAnswer, a)
			}
		}
	}
	return v
}

// isUpstreamOf tells whether server is one of the upstream servers that
// resolve name.
func (g *Guard) isUpstreamOf(name string, server netip.AddrPort) bool {
	up := g.router.route(strings.ToLower(strings.TrimSuffix(name, ".")))
	if up == nil {
		return false
	}
	return slices.Contains(up.addrs, netip.AddrPortFrom(server.Addr().Unmap(), server.Port()))
}

// InterceptedCounts returns how many intercepted messages ended with each
// result, by kind. Every kind and result is present.
func (g *Guard) InterceptedCounts() map[string]map[string]uint64 {
	out := map[string]map[string]uint64{KindQuery: {}, KindAnswer: {}}
	for _, r := range interceptResults {
		out[KindQuery][r] = g.intercepted.query[r].Load()
		out[KindAnswer][r] = g.intercepted.answer[r].Load()
	}
	return out
}
