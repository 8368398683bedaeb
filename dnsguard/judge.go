package dnsguard

import (
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxChain bounds the CNAME records followed from the query name.
const maxChain = 8

// verdict is what the guard makes of one upstream answer.
type verdict struct {
	res      result        // resultAllowed, resultForwarded, or a rejection
	reason   string        // set for a rejection
	addr     netip.Addr    // the address a pinning rejection is about
	addrs    []netip.Addr  // accepted addresses, unmapped, to learn
	lifetime time.Duration // TTL of the chain clamped to [min,max]
	reply    *dns.Msg      // released once addrs are learned
}

// judge checks resp, the upstream answer to req whose name matched r, and
// builds the reply the client may get. It reads only g's configuration,
// never the learned view, so it is safe on any answer bytes (the fuzz
// test drives it with arbitrary ones).
func (g *Guard) judge(req *dns.Msg, r *Rule, resp *dns.Msg) verdict {
	q := req.Question[0]
	if !sameQuestion(q, resp) {
		return reject(ReasonBadAnswer, netip.Addr{})
	}
	if resp.Truncated {
		return reject(ReasonTruncated, netip.Addr{})
	}

	chain, final, ok := followChain(q.Name, resp.Answer)
	if !ok {
		return reject(ReasonBadAnswer, netip.Addr{})
	}
	if resp.Rcode != dns.RcodeSuccess || !isAddrType(q.Qtype) {
		return verdict{res: resultForwarded, reply: g.passReply(req, resp, chain)}
	}

	return g.judgeAddrs(req, r, resp, chain, final)
}

// judgeAddrs pins the address records owned by the end of the chain and
// builds the reply from the chain and the records kept.
func (g *Guard) judgeAddrs(req *dns.Msg, r *Rule, resp *dns.Msg, chain []dns.RR, final string) verdict {
	records, addrs := addressRecords(resp.Answer, final, req.Question[0].Qtype)
	for _, a := range addrs {
		if reason := g.pin.check(r, a); reason != "" {
			return reject(reason, a)
		}
	}

	if len(addrs) > g.opts.MaxAddrsPerName {
		records, addrs = records[:g.opts.MaxAddrsPerName], addrs[:g.opts.MaxAddrsPerName]
	}
	answer := append(chain, records...)
	lifetime := g.lifetime(answer)
	capTTL(answer, lifetime)

	reply := g.newReply(req, resp.Rcode)
	reply.Answer = answer
	if len(addrs) == 0 {
		reply.Ns = soaOnly(resp.Ns)
		return verdict{res: resultForwarded, reply: reply}
	}
	return verdict{res: resultAllowed, addrs: addrs, lifetime: lifetime, reply: reply}
}

// reject is the verdict for a rejected answer.
func reject(reason string, addr netip.Addr) verdict {
	return verdict{res: rejection(reason), reason: reason, addr: addr}
}

// sameQuestion reports whether resp is an answer to q.
func sameQuestion(q dns.Question, resp *dns.Msg) bool {
	if !resp.Response || len(resp.Question) != 1 {
		return false
	}
	a := resp.Question[0]
	return a.Qtype == q.Qtype && a.Qclass == q.Qclass && strings.EqualFold(a.Name, q.Name)
}

// isAddrType reports whether answers to qtype are learned.
func isAddrType(qtype uint16) bool {
	return qtype == dns.TypeA || qtype == dns.TypeAAAA
}

// followChain walks the CNAME records from name and returns them in
// order with the name at the end of the chain. Records off the chain are
// not returned. It fails on a loop or a chain longer than maxChain.
func followChain(name string, answer []dns.RR) ([]dns.RR, string, bool) {
	var chain []dns.RR
	for range maxChain + 1 {
		c := cnameOf(name, answer)
		if c == nil {
			return chain, name, true
		}
		if len(chain) == maxChain || onChain(chain, c.Target) {
			return nil, "", false
		}

		chain = append(chain, c)
		name = c.Target
	}
	return nil, "", false
}

// cnameOf returns the first IN CNAME record owned by name, or nil.
func cnameOf(name string, answer []dns.RR) *dns.CNAME {
	for _, rr := range answer {
		c, ok := rr.(*dns.CNAME)
		if ok && c.Hdr.Class == dns.ClassINET && strings.EqualFold(c.Hdr.Name, name) {
			return c
		}
	}
	return nil
}

// onChain reports whether a record of chain is owned by name.
func onChain(chain []dns.RR, name string) bool {
	for _, rr := range chain {
		if strings.EqualFold(rr.Header().Name, name) {
			return true
		}
	}
	return false
}

// addressRecords returns the IN records of type qtype owned by owner, and
// their addresses, unmapped and without repeats.
func addressRecords(answer []dns.RR, owner string, qtype uint16) ([]dns.RR, []netip.Addr) {
	var records []dns.RR
	var addrs []netip.Addr
	for _, rr := range answer {
		h := rr.Header()
		if h.Rrtype != qtype || h.Class != dns.ClassINET || !strings.EqualFold(h.Name, owner) {
			continue
		}
		a, ok := recordAddr(rr)
		if !ok || containsAddr(addrs, a) {
			continue
		}

		records = append(records, rr)
		addrs = append(addrs, a)
	}
	return records, addrs
}

// recordAddr returns the unmapped address of an A or AAAA record.
func recordAddr(rr dns.RR) (netip.Addr, bool) {
	var a netip.Addr
	var ok bool
	switch rr := rr.(type) {
	case *dns.A:
		a, ok = netip.AddrFromSlice(rr.A)
	case *dns.AAAA:
		a, ok = netip.AddrFromSlice(rr.AAAA)
	}
	return a.Unmap(), ok
}

// containsAddr reports whether addrs holds a.
func containsAddr(addrs []netip.Addr, a netip.Addr) bool {
	for _, b := range addrs {
		if a == b {
			return true
		}
	}
	return false
}

// lifetime is the smallest TTL of records clamped to the configured
// floor and ceiling.
func (g *Guard) lifetime(records []dns.RR) time.Duration {
	ttl := g.ttl.Max
	for _, rr := range records {
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	return max(ttl, g.ttl.Min)
}

// capTTL lowers every TTL of records to lifetime; it never raises one.
func capTTL(records []dns.RR, lifetime time.Duration) {
	limit := uint32(min(lifetime/time.Second, 1<<31-1))
	for _, rr := range records {
		h := rr.Header()
		h.Ttl = min(h.Ttl, limit)
	}
}

// passReply builds the reply for an answer that teaches nothing: an error
// rcode, or a type that is not learned. Address records are left out, so
// the client never holds an address the data plane does not know.
func (g *Guard) passReply(req, resp *dns.Msg, chain []dns.RR) *dns.Msg {
	reply := g.newReply(req, resp.Rcode)
	reply.Ns = soaOnly(resp.Ns)
	if isAddrType(req.Question[0].Qtype) {
		reply.Answer = chain
		return reply
	}

	for _, rr := range resp.Answer {
		if t := rr.Header().Rrtype; t != dns.TypeA && t != dns.TypeAAAA {
			reply.Answer = append(reply.Answer, rr)
		}
	}
	return reply
}

// soaOnly keeps the SOA records of an authority section, which clients
// need for negative caching.
func soaOnly(ns []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range ns {
		if rr.Header().Rrtype == dns.TypeSOA {
			out = append(out, rr)
		}
	}
	return out
}
