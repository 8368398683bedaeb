package dnsguard

import (
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Limits of the queries transparent mode remembers until their answer.
const (
	pendingLifetime = 10 * time.Second // longer than any client waits for one try
	maxPending      = 65536
)

// pendingKey is what an answer echoes of the query it answers: who asked
// whom, the message ID and the question.
type pendingKey struct {
	client, server netip.AddrPort
	id, qtype      uint16
	name           string // lower case
}

func newPendingKey(client, server netip.AddrPort, id, qtype uint16, name string) pendingKey {
	unmap := func(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }
	return pendingKey{client: unmap(client), server: unmap(server), id: id, qtype: qtype, name: strings.ToLower(name)}
}

// pendingQueries are the intercepted queries the guard let through and
// whose answers have not come yet. An intercepted answer is judged only
// if it answers one of them: a datagram forged from an upstream's address
// (by an OT host, say) answers nothing. Entries expire after
// pendingLifetime; past maxPending the oldest makes room. Safe for
// concurrent use.
type pendingQueries struct {
	mu      sync.Mutex
	expires map[pendingKey]time.Time
	order   []pendingKey // insertion order, for expiry and eviction
}

func newPendingQueries() *pendingQueries {
	return &pendingQueries{expires: map[pendingKey]time.Time{}}
}

// add remembers a query let through at now.
func (p *pendingQueries) add(k pendingKey, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireLocked(now)
	if len(p.expires) >= maxPending {
		p.dropOldestLocked()
	}
	if _, ok := p.expires[k]; !ok {
		p.order = append(p.order, k)
	}
	p.expires[k] = now.Add(pendingLifetime)
}

// take reports whether k is a live pending query, and forgets it: one
// query, one answer.
func (p *pendingQueries) take(k pendingKey, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	exp, ok := p.expires[k]
	if !ok {
		return false
	}
	delete(p.expires, k)
	return now.Before(exp)
}

// expireLocked forgets the entries at the head of order that expired or
// were taken.
func (p *pendingQueries) expireLocked(now time.Time) {
	for len(p.order) > 0 {
		exp, ok := p.expires[p.order[0]]
		if ok && now.Before(exp) {
			return
		}
		if ok {
			delete(p.expires, p.order[0])
		}
		p.order = p.order[1:]
	}
}

func (p *pendingQueries) dropOldestLocked() {
	for len(p.order) > 0 {
		k := p.order[0]
		p.order = p.order[1:]
		if _, ok := p.expires[k]; ok {
			delete(p.expires, k)
			return
		}
	}
}
