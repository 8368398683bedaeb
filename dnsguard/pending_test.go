package dnsguard

import (
	"net/netip"
	"testing"
	"time"
)

// TestPendingQueries: a query is answered once, within its lifetime; past
// the cap the oldest query makes room.
func TestPendingQueries(t *testing.T) {
	client := netip.MustParseAddrPort("10.10.0.2:41000")
	server := netip.MustParseAddrPort("[::ffff:10.20.0.2]:53")
	now := time.Unix(1000, 0)
	key := func(id uint16) pendingKey { return newPendingKey(client, server, id, 1, "API.example.com.") }

	p := newPendingQueries()
	p.add(key(1), now)
	if !p.take(newPendingKey(client, netip.MustParseAddrPort("10.20.0.2:53"), 1, 1, "api.example.com."), now) {
		t.Error("the answer (unmapped server, lower-case name) does not match its query")
	}
	if p.take(key(1), now) {
		t.Error("a second answer to one query was taken")
	}

	p.add(key(2), now)
	if p.take(key(2), now.Add(pendingLifetime)) {
		t.Error("an answer after the query's lifetime was taken")
	}

	for i := range maxPending + 1 {
		p.add(newPendingKey(client, server, uint16(i), uint16(i>>16)+1, "x."), now)
	}
	if len(p.expires) > maxPending {
		t.Errorf("%d pending queries held, at most %d", len(p.expires), maxPending)
	}
	if p.take(newPendingKey(client, server, 0, 1, "x."), now) {
		t.Error("the oldest query was kept past the cap")
	}
	last := maxPending
	if !p.take(newPendingKey(client, server, uint16(last), uint16(last>>16)+1, "x."), now) {
		t.Error("the newest query was dropped")
	}
}
