package loader

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
)

// The policy tables of bpf/maps.h (ew_tables): arrays of buckets with
// room for bucketSlots prefixes each. A prefix lives in its home bucket (a
// multiply-shift hash of its masked address and length) or, when that is
// full, in a bucket of the stash after the home buckets (a second hash); a
// full home bucket has "more" set, so that a lookup goes on to the stash
// only then.
const (
	bucketSlots  = 4       // EW_BUCKET_SLOTS
	ruleLenShift = 24      // EW_RULE_LEN_SHIFT
	ruleMore     = 1 << 23 // EW_RULE_MORE_RANGES
	maxRulesets  = 1 << 23 // EW_RULE_MORE_RANGES: the ruleset index is below it
	// stashRoom is how many stash buckets there are per prefix that its
	// home bucket could not take (rounded up to a power of two).
	stashRoom    = 4
	layoutTries  = 16       // pairs of multipliers tried per table size
	layoutGrowth = 2        // doublings of the home buckets tried beyond the first size
	hashSeed     = 0x4577ab // first state of the multipliers' generator
)

// tableEntry is one prefix of a table: its masked address as the program
// compares it (the 16 bytes of struct ew_packet's daddr, an IPv4 address
// followed by 12 zero bytes, as two native-order 64-bit words), its
// length, its ruleset and the ruleset's first range.
type tableEntry struct {
	hi, lo     uint64
	bits       uint8
	ruleset    uint32
	first      grant
	moreRanges bool
}

// newTableEntry lays out a masked prefix for its table; rule is the
// ruleset numbered ruleset.
func newTableEntry(prefix netip.Prefix, ruleset uint32, rule edgewardEwRule) tableEntry {
	hi, lo := addrKey(prefix.Addr())
	return tableEntry{
		hi: hi, lo: lo,
		bits:       uint8(prefix.Bits()),
		ruleset:    ruleset,
		first:      rule.Ranges[0],
		moreRanges: rule.Nranges > 1,
	}
}

// addrKey lays an address out as the program reads it from a packet: the
// 16 bytes of ew_packet.daddr as two native-order words.
func addrKey(a netip.Addr) (hi, lo uint64) {
	var b [16]byte
	if a.Is4() {
		b4 := a.As4()
		copy(b[:], b4[:])
	} else {
		b = a.As16()
	}
	return binary.NativeEndian.Uint64(b[:8]), binary.NativeEndian.Uint64(b[8:])
}

// ruleWord is a slot's rule word: length + 1 above the ruleset index, so
// that no entry's word is 0, the mark of a free slot.
func (e tableEntry) ruleWord() uint32 {
	w := (uint32(e.bits)+1)<<ruleLenShift | e.ruleset
	if e.moreRanges {
		w |= ruleMore
	}
	return w
}

// hashing is one hash of a table, as ew_bucket computes it (see struct
// ew_table_hash): each address word folded onto itself and multiplied,
// plus a salt per prefix length, add + (bits+1)*lenMul.
type hashing struct {
	mul         [2]uint64
	lenMul, add uint64
	first       uint32
	shift       uint8
}

func (h hashing) salt(bits uint8) uint64 {
	return h.add + uint64(bits+1)*h.lenMul
}

// bucket is the bucket of the address hi, lo at the length whose salt is
// given.
func (h hashing) bucket(hi, lo, salt uint64) int {
	mixed := (hi^hi>>32)*h.mul[0] + (lo^lo>>32)*h.mul[1] + salt
	return int(h.first) + int(uint32(mixed>>h.shift))
}

func bucketOf(h hashing, e tableEntry) int {
	return h.bucket(e.hi, e.lo, h.salt(e.bits))
}

// kernel is the hash as the program reads it, with the salts of lens, the
// family's prefix lengths in the order of its settings.
func (h hashing) kernel(lens []uint8) edgewardEwTableHash {
	k := edgewardEwTableHash{Mul: h.mul, First: h.first, Shift: h.shift}
	for i, bits := range lens {
		k.Salt[i] = h.salt(bits)
	}
	return k
}

// layout is a table filled: entries per bucket, the more flags, and the
// home and stash hashes.
type layout struct {
	home, stash hashing
	buckets     [][]tableEntry
	more        []bool
}

// layOut places entries in 2^homeBits home buckets under the home hash,
// then those a full home bucket left over in a stash after them, with
// stashRoom buckets per leftover (a power of two) under the stash hash. It
// returns false when a leftover finds its stash bucket full too.
func layOut(entries []tableEntry, homeBits int, home, stash hashing) (layout, bool) {
	homes := 1 << homeBits
	home.shift = uint8(64 - homeBits)
	l := layout{home: home, buckets: make([][]tableEntry, homes), more: make([]bool, homes)}
	var left []tableEntry
	for _, e := range entries {
		if b := bucketOf(home, e); !l.put(b, e) {
			l.more[b] = true
			left = append(left, e)
		}
	}

	stashBits := max(1, bits.Len(uint(max(stashRoom*len(left), 1)-1)))
	stash.shift, stash.first = uint8(64-stashBits), uint32(homes)
	l.stash = stash
	l.buckets = append(l.buckets, make([][]tableEntry, 1<<stashBits)...)
	l.more = append(l.more, make([]bool, 1<<stashBits)...)
	for _, e := range left {
		if !l.put(bucketOf(stash, e), e) {
			return l, false
		}
	}
	return l, true
}

// put adds e to bucket unless it is full.
func (l *layout) put(bucket int, e tableEntry) bool {
	if len(l.buckets[bucket]) == bucketSlots {
		return false
	}
	l.buckets[bucket] = append(l.buckets[bucket], e)
	return true
}

// buildLayout finds hashes under which every prefix fits: at least as
// many home buckets as prefixes and, if layoutTries pairs of multipliers
// all fail, twice as many, up to layoutGrowth times. Multipliers come from
// a fixed sequence, so the same policy always gets the same table.
func buildLayout(entries []tableEntry) (layout, error) {
	minBits := max(1, bits.Len(uint(max(len(entries)-1, 0))))
	gen := splitmix{state: hashSeed}
	for homeBits := minBits; homeBits <= minBits+layoutGrowth; homeBits++ {
		for range layoutTries {
			if l, ok := layOut(entries, homeBits, gen.hashing(), gen.hashing()); ok {
				return l, nil
			}
		}
	}
	return layout{}, fmt.Errorf("%w: no hash of the %d tried gives each of %d prefixes room in its "+
		"bucket; no policy is known to do this: report it with the prefixes, and leave some out "+
		"until it loads", ErrPolicyTooLarge, (layoutGrowth+1)*layoutTries, len(entries))
}

// splitmix is the SplitMix64 generator: well-mixed 64-bit values from a
// counter.
type splitmix struct{ state uint64 }

func (g *splitmix) next() uint64 {
	g.state += 0x9e3779b97f4a7c15
	z := g.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// hashing draws the multipliers and the salt of one hash.
func (g *splitmix) hashing() hashing {
	var h hashing
	for i := range h.mul {
		h.mul[i] = g.next()
	}
	h.lenMul, h.add = g.next(), g.next()
	return h
}

// bucketValues turns a layout into the values of its ew_tables map.
func (l layout) bucketValues() []edgewardEwBucket {
	out := make([]edgewardEwBucket, len(l.buckets))
	for i, entries := range l.buckets {
		for j, e := range entries {
			out[i].Hi[j], out[i].Lo[j] = e.hi, e.lo
			out[i].Rule[j] = e.ruleWord()
			out[i].First[j] = e.first
		}
		if l.more[i] {
			out[i].More = 1
		}
	}
	return out
}

// prefixMask is the mask of a prefix length, laid out as addrKey lays
// out addresses.
func prefixMask(bits uint8, is4 bool) (hi, lo uint64) {
	full := [16]byte{}
	for i := range full {
		full[i] = 0xff
	}
	ones := netip.AddrFrom16(full)
	if is4 {
		ones = netip.AddrFrom4([4]byte(full[:4]))
	}
	mask, _ := ones.Prefix(int(bits))
	return addrKey(mask.Addr())
}

// rulesetIndex numbers distinct rulesets: prefixes that grant the same
// ranges share one entry of ew_rulesets.
type rulesetIndex struct {
	index map[edgewardEwRule]uint32
	list  []edgewardEwRule
}

func (r *rulesetIndex) of(rule edgewardEwRule) (uint32, error) {
	if i, ok := r.index[rule]; ok {
		return i, nil
	}
	if len(r.list) >= maxRulesets {
		return 0, fmt.Errorf("%w: more than %d distinct sets of port ranges",
			ErrPolicyTooLarge, maxRulesets)
	}
	if r.index == nil {
		r.index = map[edgewardEwRule]uint32{}
	}
	i := uint32(len(r.list))
	r.index[rule] = i
	r.list = append(r.list, rule)
	return i, nil
}
