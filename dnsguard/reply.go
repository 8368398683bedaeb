package dnsguard

import (
	"strings"

	"github.com/miekg/dns"
)

// checkQuery returns dns.RcodeSuccess for a query the guard handles: a
// standard QUERY with one IN question of a type that can be forwarded.
// Otherwise it returns the rcode to answer with.
func checkQuery(req *dns.Msg) int {
	switch {
	case req.Response || req.Opcode != dns.OpcodeQuery:
		return dns.RcodeNotImplemented
	case len(req.Question) != 1 || req.Question[0].Qclass != dns.ClassINET:
		return dns.RcodeFormatError
	}

	switch req.Question[0].Qtype {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeOPT:
		return dns.RcodeNotImplemented
	}
	return dns.RcodeSuccess
}

// upstreamQuery builds the query sent upstream for req: a fresh random
// ID, recursion desired, the client's question and DO and CD bits, and an
// EDNS buffer of upstreamUDPSize whatever the client advertised. Client
// EDNS options (cookies, client subnet) are not forwarded.
func upstreamQuery(req *dns.Msg) *dns.Msg {
	q := new(dns.Msg)
	q.Id = dns.Id()
	q.RecursionDesired = true
	q.CheckingDisabled = req.CheckingDisabled
	q.Question = []dns.Question{req.Question[0]}

	do := false
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	q.SetEdns0(upstreamUDPSize, do)
	return q
}

// newReply starts the reply to req with rcode. It carries an OPT record
// when req did, advertising upstreamUDPSize.
func (g *Guard) newReply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.Compress = true

	if rcode > 0xF {
		rcode = dns.RcodeServerFailure // extended rcodes are not passed on
	}
	m.Rcode = rcode
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(upstreamUDPSize, opt.Do())
	}
	return m
}

// rcode is an empty reply to req. A request that could not be parsed
// into a question gets the rcode without question.
func (g *Guard) rcode(req *dns.Msg, rcode int) *dns.Msg {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.Id, m.Response, m.Opcode, m.Rcode = req.Id, true, req.Opcode, rcode
		return m
	}
	return g.newReply(req, rcode)
}

// rejectReply is the reply for a rejected answer: SERVFAIL, except that a
// truncated answer is passed to a UDP client as an empty truncated reply,
// so that it asks again over TCP. No record of the answer is released.
func (g *Guard) rejectReply(req *dns.Msg, reason string, tcp bool) *dns.Msg {
	if reason != ReasonTruncated || tcp {
		return g.rcode(req, dns.RcodeServerFailure)
	}

	m := g.newReply(req, dns.RcodeSuccess)
	m.Truncated = true
	return m
}

// keepClientCase writes the owner names that spell the query name the way
// the client did, so that case-checking resolvers (DNS 0x20) accept it.
func keepClientCase(reply *dns.Msg, qname string) {
	for _, rr := range reply.Answer {
		h := rr.Header()
		if h.Name != qname && strings.EqualFold(h.Name, qname) {
			h.Name = qname
		}
	}
}
