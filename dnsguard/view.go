package dnsguard

import (
	"net/netip"
	"sync"
	"time"
)

// view is the guard's picture of what the data plane holds: per
// allowlist pattern, the learned addresses with their expiry. It decides
// lifetimes on refresh and which address to evict when a pattern is
// full. Safe for concurrent use.
type view struct {
	mu    sync.Mutex
	max   int                         // addresses per pattern
	rules []*Rule                     // by Rule.index
	addrs []map[netip.Addr]*viewEntry // by Rule.index
	seq   uint64                      // learn order, breaks ties of equal clock readings
}

// viewEntry is one learned address of one pattern.
type viewEntry struct {
	expires time.Time
	used    uint64 // seq of the last learn; the smallest is evicted first
	name    string // query name of the last learn; "" when restored
}

// newView returns an empty view for rules.
func newView(rules []*Rule, max int) *view {
	v := &view{max: max, rules: rules, addrs: make([]map[netip.Addr]*viewEntry, len(rules))}
	for i := range v.addrs {
		v.addrs[i] = map[netip.Addr]*viewEntry{}
	}
	return v
}

// remaining returns the lifetime left at now for addr under r, or 0 when
// the view does not hold it.
func (v *view) remaining(r *Rule, addr netip.Addr, now time.Time) time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()

	e := v.addrs[r.index][addr]
	if e == nil || !e.expires.After(now) {
		return 0
	}
	return e.expires.Sub(now)
}

// commit records entries that the learner accepted at now, from an
// answer for the query name qname, and returns the entries evicted to
// keep r within the cap, for a Forgetter.
func (v *view) commit(r *Rule, entries []Learned, qname string, now time.Time) []Learned {
	v.mu.Lock()
	defer v.mu.Unlock()

	m := v.addrs[r.index]
	for _, l := range entries {
		v.seq++
		m[l.Addr] = &viewEntry{expires: now.Add(l.Expires), used: v.seq, name: qname}
	}

	v.prune(m, now)
	return v.evict(r, m, now)
}

// prune drops the expired entries of m; the kernel has dropped them too.
func (v *view) prune(m map[netip.Addr]*viewEntry, now time.Time) {
	for a, e := range m {
		if !e.expires.After(now) {
			delete(m, a)
		}
	}
}

// evict removes the least recently learned entries of m beyond the cap
// and returns them.
func (v *view) evict(r *Rule, m map[netip.Addr]*viewEntry, now time.Time) []Learned {
	var out []Learned
	for len(m) > v.max {
		var oldest netip.Addr
		var e *viewEntry
		for a, c := range m {
			if e == nil || c.used < e.used {
				oldest, e = a, c
			}
		}

		delete(m, oldest)
		out = append(out, Learned{Addr: oldest, Ports: r.Ports, Expires: e.expires.Sub(now), Name: r.Pattern})
	}
	return out
}

// restore records one entry read back from the data plane at now. The
// least recently learned order follows the remaining lifetime, so the
// entry closest to expiry is evicted first. It does not apply the cap:
// the next commit for the pattern does.
func (v *view) restore(r *Rule, l Learned, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()

	expires := now.Add(l.Expires)
	if e := v.addrs[r.index][l.Addr]; e != nil && e.expires.After(expires) {
		return
	}
	v.seq++
	v.addrs[r.index][l.Addr] = &viewEntry{expires: expires, used: v.seq}
}

// counts returns, per rule index, how many unexpired addresses the view
// holds at now.
func (v *view) counts(now time.Time) []int {
	v.mu.Lock()
	defer v.mu.Unlock()

	out := make([]int, len(v.addrs))
	for i, m := range v.addrs {
		for _, e := range m {
			if e.expires.After(now) {
				out[i]++
			}
		}
	}
	return out
}

// names returns, for each of addrs held unexpired at now, the query name
// of its most recent learn under any pattern: the data plane keeps the
// last write, so that is the name it enforces for.
func (v *view) names(addrs []netip.Addr, now time.Time) map[netip.Addr]string {
	v.mu.Lock()
	defer v.mu.Unlock()

	out := map[netip.Addr]string{}
	for _, a := range addrs {
		var last *viewEntry
		for _, m := range v.addrs {
			if e := m[a.Unmap()]; e != nil && e.expires.After(now) && (last == nil || e.used > last.used) {
				last = e
			}
		}
		if last != nil {
			out[a] = last.name
		}
	}
	return out
}
