package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// TestLayoutFindsEveryPrefix: for tables from empty to 100,000 prefixes,
// every prefix is found where the program looks (home bucket, then the
// stash when the home bucket overflowed), no bucket holds more than it
// has room for, and prefixes not in the table are not found.
func TestLayoutFindsEveryPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 5, 1000, 100000} {
		for _, is4 := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d ipv4=%v", n, is4), func(t *testing.T) {
				entries := randomEntries(rng, n, is4)
				l, err := buildLayout(entries)
				if err != nil {
					t.Fatal(err)
				}
				assertLayout(t, l, entries)
				for range 1000 {
					stranger := randomEntries(rng, 1, is4)[0]
					if slices.ContainsFunc(entries, stranger.sameKey) {
						continue
					}
					if _, ok := l.find(stranger); ok {
						t.Fatalf("found %+v, which is not in the table", stranger)
					}
				}
			})
		}
	}
}

// TestLayoutOfSequentialHosts: the benchmark's shape (hosts numbered one
// after the other) spreads like random prefixes: most buckets take their
// prefixes at home, and the table is no larger than the first size tried.
func TestLayoutOfSequentialHosts(t *testing.T) {
	var entries []tableEntry
	for i := range 100000 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], 0x0a000000|uint32(i)<<8|1)
		entries = append(entries, newTableEntry(netip.PrefixFrom(netip.AddrFrom4(b), 32), 0, edgewardEwRule{}))
	}
	l, err := buildLayout(entries)
	if err != nil {
		t.Fatal(err)
	}
	assertLayout(t, l, entries)
	if homes := int(l.stash.first); homes != 131072 {
		t.Errorf("%d home buckets, want 131072 (the first size tried)", homes)
	}
	if stashed := countStashed(l); stashed > len(entries)/50 {
		t.Errorf("%d of %d prefixes in the stash, want under 2%%", stashed, len(entries))
	}
}

// TestLayoutOfAddressPlans: numbering plans whose hosts differ in the
// last byte of each 8-byte half of the address (an IPv6 site's subnet ID
// and interface ID, IPv4 hosts of many /24s) spread over the table: a hash
// that let those bytes reach only the top bits of its product put them in
// 256 buckets. 512 x 512 is MaxRules.
func TestLayoutOfAddressPlans(t *testing.T) {
	plans := map[string]func(i, j int) netip.Prefix{
		"ipv6 subnet and host": func(i, j int) netip.Prefix {
			a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, byte(i >> 8), byte(i), 14: byte(j >> 8), 15: byte(j)}
			return netip.PrefixFrom(netip.AddrFrom16(a), 128)
		},
		"ipv4 net and host": func(i, j int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j)}), 32)
		},
	}
	for name, plan := range plans {
		for _, size := range []int{48, 64, 200} {
			var entries []tableEntry
			for i := range size {
				for j := range min(size, 256) {
					entries = append(entries, newTableEntry(plan(i+1, j), 0, edgewardEwRule{}))
				}
			}
			l, err := buildLayout(entries)
			if err != nil {
				t.Fatalf("%s, %d prefixes: %v", name, len(entries), err)
			}
			assertLayout(t, l, entries)
		}
	}

	var max6 []tableEntry
	for i := range 512 {
		for j := range 512 {
			max6 = append(max6, newTableEntry(plans["ipv6 subnet and host"](i, j), 0, edgewardEwRule{}))
		}
	}
	l, err := buildLayout(max6)
	if err != nil {
		t.Fatalf("%d prefixes: %v", len(max6), err)
	}
	if homes := int(l.stash.first); homes != MaxRules {
		t.Errorf("%d home buckets for %d prefixes, want %d (the first size tried)", homes, len(max6), MaxRules)
	}
}

// TestLayoutIsDeterministic: a policy compiled twice gets the same
// tables, so that a reload of the same file changes nothing.
func TestLayoutIsDeterministic(t *testing.T) {
	entries := randomEntries(rand.New(rand.NewPCG(3, 4)), 5000, false)
	a, errA := buildLayout(entries)
	b, errB := buildLayout(entries)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if a.home != b.home || a.stash != b.stash || !slices.Equal(a.bucketValues(), b.bucketValues()) {
		t.Error("two layouts of the same prefixes differ")
	}
}

// TestLayoutRefusesWhatCannotFit: prefixes that no hash can tell apart
// (here: one prefix nine times, more than a home and a stash bucket hold;
// Compile never makes such a list) give ErrPolicyTooLarge, not a table
// that loses one.
func TestLayoutRefusesWhatCannotFit(t *testing.T) {
	same := newTableEntry(netip.MustParsePrefix("10.0.0.0/8"), 0, edgewardEwRule{})
	entries := slices.Repeat([]tableEntry{same}, 2*bucketSlots+1)
	if _, err := buildLayout(entries); !errors.Is(err, ErrPolicyTooLarge) {
		t.Fatalf("got %v, want ErrPolicyTooLarge", err)
	}
}

// TestLayoutOfNestedPrefixes: prefixes of one address at every length (so
// the same masked address many times) spread over buckets by their
// lengths, and all fit: every IPv4 and IPv6 length of one address, and 200
// groups of five nested prefixes.
func TestLayoutOfNestedPrefixes(t *testing.T) {
	var v4, v6, groups []tableEntry
	for bits := range 33 {
		v4 = append(v4, newTableEntry(netip.PrefixFrom(netip.MustParseAddr("10.20.0.0"), bits).Masked(), 0, edgewardEwRule{}))
	}
	for bits := range 129 {
		v6 = append(v6, newTableEntry(netip.PrefixFrom(netip.MustParseAddr("2001:db8::"), bits).Masked(), 0, edgewardEwRule{}))
	}
	for i := range 200 {
		for _, bits := range []int{16, 18, 20, 22, 24} {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), bits)
			groups = append(groups, newTableEntry(p, 0, edgewardEwRule{}))
		}
	}
	for name, entries := range map[string][]tableEntry{"ipv4": v4, "ipv6": v6, "groups": groups} {
		l, err := buildLayout(entries)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertLayout(t, l, entries)
	}
}

// TestBucketValues: what the program reads from a bucket: the address,
// the rule word (length + 1, the more-ranges flag, the ruleset), the first
// range, and more on a home bucket that overflowed.
func TestBucketValues(t *testing.T) {
	two := edgewardEwRule{Nranges: 2}
	two.Ranges[0] = grant{Proto: 6, First: 443, Last: 443, Endpoint: 3}
	two.Ranges[1] = grant{Proto: 17, First: 53, Last: 53, Endpoint: 4}
	e := newTableEntry(netip.MustParsePrefix("192.0.2.0/24"), 7, two)

	l, err := buildLayout([]tableEntry{e})
	if err != nil {
		t.Fatal(err)
	}
	b := l.bucketValues()[bucketOf(l.home, e)]
	want := edgewardEwBucket{}
	want.Hi[0] = binary.NativeEndian.Uint64([]byte{192, 0, 2, 0, 0, 0, 0, 0})
	want.Rule[0] = 25<<24 | 1<<23 | 7
	want.First[0] = two.Ranges[0]
	if b != want {
		t.Errorf("bucket %+v, want %+v", b, want)
	}

	v6 := newTableEntry(netip.MustParsePrefix("2001:db8::/32"), 1, edgewardEwRule{Nranges: 1})
	if v6.hi != binary.NativeEndian.Uint64([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0}) || v6.lo != 0 {
		t.Errorf("IPv6 words %#x %#x", v6.hi, v6.lo)
	}
	if w := v6.ruleWord(); w != 33<<24|1 {
		t.Errorf("rule word %#x, want %#x (no more ranges)", w, 33<<24|1)
	}

	hi, lo := prefixMask(20, true)
	if hi != binary.NativeEndian.Uint64([]byte{0xff, 0xff, 0xf0, 0, 0, 0, 0, 0}) || lo != 0 {
		t.Errorf("mask of /20: %#x %#x", hi, lo)
	}
}

func randomEntries(rng *rand.Rand, n int, is4 bool) []tableEntry {
	seen := map[netip.Prefix]bool{}
	var out []tableEntry
	for len(out) < n {
		p := randomPrefix(rng, is4)
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, newTableEntry(p, uint32(len(out)), edgewardEwRule{Nranges: 1}))
	}
	return out
}

// randomPrefix draws a masked prefix of a few lengths, short ones
// included.
func randomPrefix(rng *rand.Rand, is4 bool) netip.Prefix {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if is4 {
		bits := []int{0, 8, 23, 24, 31, 32}[rng.IntN(6)]
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), bits).Masked()
	}
	bits := []int{0, 32, 48, 63, 64, 100, 127, 128}[rng.IntN(8)]
	return netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked()
}

func assertLayout(t *testing.T, l layout, entries []tableEntry) {
	t.Helper()
	for i, b := range l.buckets {
		if len(b) > bucketSlots {
			t.Fatalf("bucket %d holds %d prefixes, room for %d", i, len(b), bucketSlots)
		}
	}
	for _, e := range entries {
		got, ok := l.find(e)
		if !ok || got != e {
			t.Fatalf("prefix %+v: found %v, %+v", e, ok, got)
		}
	}
}

// countStashed counts the prefixes outside their home buckets.
func countStashed(l layout) int {
	n := 0
	for _, b := range l.buckets[l.stash.first:] {
		n += len(b)
	}
	return n
}

// TestPolicyTableLookup: the program finds, for random destinations, the
// longest prefix of a large random policy that contains them, as a plain
// longest-prefix match over the configuration says: IPv4 and IPv6, four
// prefix lengths each, prefixes in the stash, and ports beyond a
// prefix's first range (which live in ew_rulesets).
func TestPolicyTableLookup(t *testing.T) {
	cfg, p := stashingPolicy(t)
	l := openTestLoader(t, nil)
	if err := l.ApplyPolicy(p); err != nil {
		t.Fatal(err)
	}
	judge := newTestJudge(t, l)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 5))
	for _, pr := range tableProbes(rng, cfg, p) {
		wantEndpoint, allowed := longestMatch(cfg, pr.Addr(), pr.Port())
		got := judge.egress(t, pr)
		switch {
		case allowed && (got.Reason != Reason(edgewardEwReasonEW_REASON_ENDPOINT) || got.Endpoint != uint16(wantEndpoint)):
			t.Fatalf("seed %d, %s: got %s endpoint %d, want endpoint %d (%s)", seed, pr, got.Reason, got.Endpoint,
				wantEndpoint, cfg.Endpoints[wantEndpoint].Name)
		case !allowed && got.Reason != Reason(edgewardEwReasonEW_REASON_NO_RULE):
			t.Fatalf("seed %d, %s: got %s endpoint %d, want no_rule", seed, pr, got.Reason, got.Endpoint)
		}
	}
}

// stashingPolicy returns a random policy (the same on every run) whose
// tables keep prefixes of both families in their stash, so that the test
// covers it.
func stashingPolicy(t *testing.T) (*config.Config, *Policy) {
	t.Helper()
	for seed := range uint64(20) {
		cfg := randomTablePolicy(rand.New(rand.NewPCG(seed, 5)), 8000)
		p, err := Compile(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		stashed := stashedPrefixes(p)
		var v4, v6 bool
		for prefix := range stashed {
			v4, v6 = v4 || prefix.Addr().Is4(), v6 || prefix.Addr().Is6()
		}
		if v4 && v6 {
			return cfg, p
		}
	}
	t.Fatal("no policy of 20 tried keeps prefixes of both families in the stash")
	return nil, nil
}

// randomTablePolicy makes n endpoints, each one prefix of one of four
// lengths per family and its own TCP port; every fifth also a second
// port.
func randomTablePolicy(rng *rand.Rand, n int) *config.Config {
	cfg := &config.Config{Mode: config.ModeEnforce}
	seen := map[netip.Prefix]bool{}
	for len(cfg.Endpoints) < n {
		i := len(cfg.Endpoints)
		var b [16]byte
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		b[0] = 10 // keep IPv4 prefixes inside 10.0.0.0/8, so that they nest
		prefix := netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), []int{32, 24, 20, 16}[rng.IntN(4)]).Masked()
		if i%2 == 1 {
			b[0], b[1] = 0xfd, 0
			prefix = netip.PrefixFrom(netip.AddrFrom16(b), []int{128, 112, 64, 48}[rng.IntN(4)]).Masked()
		}
		if seen[prefix] {
			continue
		}
		seen[prefix] = true
		ports := []config.PortRange{{Proto: config.ProtoTCP, First: uint16(1000 + 2*i), Last: uint16(1000 + 2*i)}}
		if i%5 == 0 {
			ports = append(ports, config.PortRange{Proto: config.ProtoTCP, First: uint16(1001 + 2*i), Last: uint16(1001 + 2*i)})
		}
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{Name: fmt.Sprintf("e%d", i), To: []netip.Prefix{prefix}, Ports: ports})
	}
	addTwins(cfg, seen)
	addNested(cfg)
	return cfg
}

// addNested adds two chains of nine nested prefixes of one address each
// (10.99.0.0/16 to /32, fd00:99::/48 to /112), one endpoint per prefix:
// the same masked address at many lengths.
func addNested(cfg *config.Config) {
	chains := []struct {
		addr netip.Addr
		bits []int
	}{
		{netip.MustParseAddr("10.99.0.0"), []int{16, 18, 20, 22, 24, 26, 28, 30, 32}},
		{netip.MustParseAddr("fd00:99::"), []int{48, 56, 64, 72, 80, 88, 96, 104, 112}},
	}
	for _, c := range chains {
		for _, bits := range c.bits {
			port := uint16(1000 + 2*len(cfg.Endpoints))
			cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{
				Name: fmt.Sprintf("nested%d", len(cfg.Endpoints)), To: []netip.Prefix{netip.PrefixFrom(c.addr, bits)},
				Ports: []config.PortRange{{Proto: config.ProtoTCP, First: port, Last: port}},
			})
		}
	}
}

// addTwins adds, for some /16 and /48 prefixes, an endpoint of the longer
// prefix with the same address (/24, /64): both hash alike, and only the
// length in a slot's rule word tells them apart.
func addTwins(cfg *config.Config, seen map[netip.Prefix]bool) {
	twins := 0
	for _, ep := range slices.Clone(cfg.Endpoints) {
		longer := map[int]int{16: 24, 48: 64}[ep.To[0].Bits()]
		twin := netip.PrefixFrom(ep.To[0].Addr(), longer)
		if longer == 0 || seen[twin] || twins == 40 {
			continue
		}
		seen[twin] = true
		twins++
		port := uint16(1000 + 2*len(cfg.Endpoints))
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{
			Name: fmt.Sprintf("twin%d", twins), To: []netip.Prefix{twin},
			Ports: []config.PortRange{{Proto: config.ProtoTCP, First: port, Last: port}},
		})
	}
}

// tableProbes picks destinations inside configured prefixes (with a port
// of the endpoint, its second port, or that of another endpoint), some
// outside every prefix, and one inside every prefix the stash holds.
func tableProbes(rng *rand.Rand, cfg *config.Config, p *Policy) []netip.AddrPort {
	var probes []netip.AddrPort
	for range 3000 {
		ep := cfg.Endpoints[rng.IntN(len(cfg.Endpoints))]
		dst := randomAddrIn(rng, ep.To[0])
		port := ep.Ports[rng.IntN(len(ep.Ports))].First
		if rng.IntN(4) == 0 {
			port = cfg.Endpoints[rng.IntN(len(cfg.Endpoints))].Ports[0].First
		}
		if rng.IntN(8) == 0 {
			dst = randomAddrIn(rng, netip.MustParsePrefix("192.0.2.0/24"))
		}
		probes = append(probes, netip.AddrPortFrom(dst, port))
	}
	probes = append(probes, sameBucketStrangers(rng, cfg, p)...)

	owner := map[netip.Prefix]config.Endpoint{}
	for _, ep := range cfg.Endpoints {
		owner[ep.To[0]] = ep
	}
	for prefix := range stashedPrefixes(p) {
		ports := owner[prefix].Ports
		port := ports[rng.IntN(len(ports))].First
		probes = append(probes, netip.AddrPortFrom(randomAddrIn(rng, prefix), port))
	}
	return probes
}

// sameBucketStrangers returns, for some /128 prefixes of the policy,
// addresses that share their home bucket and their first 64 bits but not
// the rest: only the comparison of the low word tells them apart.
func sameBucketStrangers(rng *rand.Rand, cfg *config.Config, p *Policy) []netip.AddrPort {
	var out []netip.AddrPort
	f := p.settings.Family[indexIPv6]
	home := hashing{mul: f.Hash[0].Mul, first: f.Hash[0].First, shift: f.Hash[0].Shift}
	for _, ep := range cfg.Endpoints {
		if ep.To[0].Bits() != 128 || len(out) == 20 {
			continue
		}
		e := newTableEntry(ep.To[0], 0, edgewardEwRule{})
		salt := f.Hash[0].Salt[slices.Index(f.Lens[:f.Nlens], e.bits)]
		for range 1 << 20 {
			stranger := e
			stranger.lo = rng.Uint64()
			if stranger.lo != e.lo && home.bucket(stranger.hi, stranger.lo, salt) == home.bucket(e.hi, e.lo, salt) {
				var b [16]byte
				binary.NativeEndian.PutUint64(b[:8], stranger.hi)
				binary.NativeEndian.PutUint64(b[8:], stranger.lo)
				out = append(out, netip.AddrPortFrom(netip.AddrFrom16(b), ep.Ports[0].First))
				break
			}
		}
	}
	return out
}

// stashedPrefixes lists the prefixes the tables of p keep in their stash.
func stashedPrefixes(p *Policy) map[netip.Prefix]bool {
	out := map[netip.Prefix]bool{}
	for i, table := range p.tables {
		for _, b := range table[p.settings.Family[i].Hash[1].First:] {
			for j := range bucketSlots {
				if b.Rule[j] != 0 {
					out[keyPrefix(b.Hi[j], b.Lo[j], int(b.Rule[j]>>ruleLenShift)-1, i == indexIPv4)] = true
				}
			}
		}
	}
	return out
}

// keyPrefix undoes addrKey.
func keyPrefix(hi, lo uint64, bits int, is4 bool) netip.Prefix {
	var b [16]byte
	binary.NativeEndian.PutUint64(b[:8], hi)
	binary.NativeEndian.PutUint64(b[8:], lo)
	if is4 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), bits)
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), bits)
}

func randomAddrIn(rng *rand.Rand, prefix netip.Prefix) netip.Addr {
	b := prefix.Addr().AsSlice()
	for i := range b {
		if i*8 >= prefix.Bits() {
			b[i] = byte(rng.Uint32())
		} else if rest := prefix.Bits() - i*8; rest < 8 {
			b[i] |= byte(rng.Uint32()) & (0xff >> rest)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// longestMatch is the reference: the endpoint whose prefix is the longest
// containing dst among those that grant TCP port, if any (each port
// belongs to one endpoint here, so no order between endpoints matters).
func longestMatch(cfg *config.Config, dst netip.Addr, port uint16) (int, bool) {
	best, bestBits := -1, -1
	for i, ep := range cfg.Endpoints {
		for _, to := range ep.To {
			if !to.Contains(dst) || to.Bits() <= bestBits {
				continue
			}
			for _, pr := range ep.Ports {
				if port >= pr.First && port <= pr.Last {
					best, bestBits = i, to.Bits()
				}
			}
		}
	}
	return best, best >= 0
}

// testJudge runs the explain twin of tc_egress_eth, loaded once, on the
// maps of a test loader.
type testJudge struct {
	run func(packet []byte) (*Explanation, error)
}

func newTestJudge(t *testing.T, l *Loader) testJudge {
	t.Helper()
	pinned, err := openPinnedMaps(l.pins.maps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeMaps(pinned) })
	prog, out, err := loadExplainTwin("tc_egress_eth", pinned)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close(); out.Close() })

	probe := Probe{Hook: HookTCEgress}
	return testJudge{run: func(packet []byte) (*Explanation, error) {
		if err := runProbe(prog, probe, packet); err != nil {
			return nil, err
		}
		return readExplanation(out, pinned, probe)
	}}
}

// egress judges a TCP SYN from the gateway to dst.
func (j testJudge) egress(t *testing.T, dst netip.AddrPort) *Explanation {
	t.Helper()
	l4 := pkt.TCPWithFlags(40000, dst.Port(), pkt.TCPSyn)
	var packet []byte
	if dst.Addr().Is4() {
		packet = pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, dst.Addr(), pkt.ProtoTCP, pkt.IPv4Options{}, l4))
	} else {
		packet = pkt.Ether(pkt.EtherIPv6, pkt.IPv6(gw6, dst.Addr(), pkt.ProtoTCP, l4))
	}
	x, err := j.run(packet)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestLayoutWithoutOverflowHasAStash: even when every prefix fits at home,
// the stash hash points into the table (two buckets), not past its end.
func TestLayoutWithoutOverflowHasAStash(t *testing.T) {
	l, err := buildLayout(randomEntries(rand.New(rand.NewPCG(7, 8)), 1, true))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(l.buckets), int(l.stash.first)+2; got != want {
		t.Fatalf("%d buckets, want %d home buckets and 2 in the stash", got, want)
	}
	if l.stash.shift != 63 {
		t.Errorf("stash shift %d, want 63 (two buckets)", l.stash.shift)
	}
}

// sameKey tells whether two entries are the same prefix.
func (e tableEntry) sameKey(o tableEntry) bool {
	return e.hi == o.hi && e.lo == o.lo && e.bits == o.bits
}

// find looks an entry up as the program does.
func (l layout) find(key tableEntry) (tableEntry, bool) {
	b := bucketOf(l.home, key)
	for _, e := range l.buckets[b] {
		if e.sameKey(key) {
			return e, true
		}
	}
	if !l.more[b] {
		return tableEntry{}, false
	}
	for _, e := range l.buckets[bucketOf(l.stash, key)] {
		if e.sameKey(key) {
			return e, true
		}
	}
	return tableEntry{}, false
}
