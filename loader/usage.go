package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// MapUsage is how full one kernel map is.
type MapUsage struct {
	Map      string // the map's name in bpf/maps.h, with the address family for a policy table
	Entries  int
	Capacity int
}

// Usage counts the entries of every map that can fill, against its
// capacity: the active policy's IPv4 and IPv6 entries (read from its
// settings), flows, learned destinations, fragments and interface roles.
// The hash maps are walked with batched lookups, a few milliseconds for
// a full flow table; entries added or removed meanwhile may or may not
// be counted. The LRU maps (flows, learned destinations, fragments)
// never refuse an entry: at capacity the least recently used one makes
// room. Usage fails when a map cannot be read.
func (m *Maps) Usage() ([]MapUsage, error) {
	p, _, err := m.ActivePolicy()
	if err != nil {
		return nil, err
	}
	out := []MapUsage{
		{Map: "ew_tables/ipv4", Entries: p.Entries4, Capacity: MaxRules},
		{Map: "ew_tables/ipv6", Entries: p.Entries6, Capacity: MaxRules},
	}

	for _, h := range []struct {
		name  string
		m     *ebpf.Map
		count func(*ebpf.Map) (int, error)
	}{
		{"ew_flows", m.flows, countEntries[edgewardEwFlowKey, edgewardEwFlow]},
		{"ew_learned_dests", m.learned, countEntries[edgewardEwLearnedKey, edgewardEwLearned]},
		{"ew_frags", m.frags, countEntries[edgewardEwFragKey, edgewardEwFragVerdict]},
		{"ew_ifaces", m.ifaces, countEntries[uint32, uint32]},
	} {
		n, err := h.count(h.m)
		if err != nil {
			return nil, fmt.Errorf("count entries of %s: %w", h.name, err)
		}
		out = append(out, MapUsage{Map: h.name, Entries: n, Capacity: int(h.m.MaxEntries())})
	}
	return out, nil
}

// countEntries counts the entries of a hash map with key K and value V.
func countEntries[K, V any](m *ebpf.Map) (int, error) {
	n := 0
	err := walk(m, func(*K, *V) { n++ })
	return n, err
}

// walkBatch is how many entries one batched lookup reads. A hash map
// answers ENOSPC when one of its buckets holds more entries than that,
// which no bucket comes near.
const walkBatch = 1024

// walk calls fn for every entry of the hash map m, read in batches (one
// system call per walkBatch entries, where a key-by-key walk needs two
// per entry and starts over when the key it stands on is deleted). fn
// must not keep the pointers it gets.
func walk[K, V any](m *ebpf.Map, fn func(*K, *V)) error {
	keys := make([]K, walkBatch)
	values := make([]V, walkBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, values, nil)
		for i := range n {
			fn(&keys[i], &values[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
