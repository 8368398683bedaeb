package dnsguard

import (
	"errors"
	"net/netip"
	"syscall"
	"time"
)

// Defaults for the zero fields of Options.
const (
	DefaultMaxAddrsPerName = 64
	DefaultUpstreamTimeout = 2 * time.Second
	DefaultLearnTimeout    = 2 * time.Second
	DefaultMaxInFlight     = 256
	DefaultEventInterval   = time.Second
	DefaultEventBurst      = 10
)

// upstreamUDPSize is the EDNS buffer size the guard advertises upstream
// (the DNS flag day 2020 value): larger answers come back truncated and
// are fetched again over TCP instead of being fragmented.
const upstreamUDPSize = 1232

// Options are the parts of the guard that the daemon provides. Only
// Learner is required.
type Options struct {
	// Learner writes accepted addresses into the data plane. Required. If
	// it also implements Forgetter, evictions are passed on.
	Learner Learner

	// AllowClient reports whether a client may use the guard; others get
	// REFUSED. Nil allows loopback clients only. It is called once per
	// query and must be fast and safe for concurrent use.
	AllowClient func(netip.Addr) bool

	// LANPrefixes are the gateway's LAN ranges. A name without answers_in
	// may not resolve into them (DNS rebinding toward the OT network).
	LANPrefixes []netip.Prefix

	// MaxAddrsPerName caps the addresses held per allowlist pattern; the
	// least recently learned one is evicted first. Default 64.
	MaxAddrsPerName int

	// Now is the clock for lifetimes and the event limiter. Default
	// time.Now. Latency metrics always use the real clock.
	Now func() time.Time

	// UpstreamTimeout bounds one exchange with one upstream server before
	// the guard fails over to the next. Default 2s.
	UpstreamTimeout time.Duration

	// LearnTimeout bounds one Learn call; a Learn that overruns it fails
	// the query with SERVFAIL. Default 2s.
	LearnTimeout time.Duration

	// MaxInFlight bounds the queries handled at once; beyond it the guard
	// answers SERVFAIL at once (counted as "overloaded"). Default 256.
	MaxInFlight int

	// SocketControl, when set, runs on every socket the guard opens
	// toward upstream servers before it connects (net.Dialer's Control);
	// a socket it fails on is not used. Transparent mode marks the
	// sockets with it (intercept.MarkSocket), so that netfilter lets only
	// the guard reach upstreams without a verdict.
	SocketControl func(network, address string, c syscall.RawConn) error

	// OnEvent, when set, receives rejected answers and learner failures,
	// at most EventBurst at once and one per EventInterval after that.
	// It is called on the query path: it must not block.
	OnEvent func(Event)

	// EventInterval and EventBurst shape the OnEvent rate limit. Defaults
	// 1s and 10.
	EventInterval time.Duration
	EventBurst    int
}

// Event describes one rejected answer or failed learner call, for the
// daemon to log.
type Event struct {
	Reason     string     // one of the Reason constants
	Pattern    string     // the allowlist pattern of the query
	Name       string     // the query name as the client wrote it
	Client     netip.Addr // who asked
	Addr       netip.Addr // the offending address, when the reason is about one
	Err        error      // the learner's error, for ReasonLearnFailed
	Suppressed uint64     // events dropped by the rate limit since the previous one
}

// withDefaults returns o with its zero fields filled in, or an error for
// a missing Learner or a negative limit.
func (o Options) withDefaults() (Options, error) {
	if o.Learner == nil {
		return o, errors.New("options: a Learner is required")
	}
	if o.MaxAddrsPerName < 0 || o.MaxInFlight < 0 || o.EventBurst < 0 {
		return o, errors.New("options: limits must not be negative")
	}

	if o.AllowClient == nil {
		o.AllowClient = func(a netip.Addr) bool { return a.IsLoopback() }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.MaxAddrsPerName = orDefault(o.MaxAddrsPerName, DefaultMaxAddrsPerName)
	o.MaxInFlight = orDefault(o.MaxInFlight, DefaultMaxInFlight)
	o.EventBurst = orDefault(o.EventBurst, DefaultEventBurst)
	o.UpstreamTimeout = orDefault(o.UpstreamTimeout, DefaultUpstreamTimeout)
	o.LearnTimeout = orDefault(o.LearnTimeout, DefaultLearnTimeout)
	o.EventInterval = orDefault(o.EventInterval, DefaultEventInterval)

	o.LANPrefixes = unmapPrefixes(o.LANPrefixes)
	return o, nil
}

// unmapPrefixes returns a copy of prefixes with IPv4-mapped IPv6 prefixes
// written as IPv4, so that they hold unmapped addresses.
func unmapPrefixes(prefixes []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		out = append(out, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p)).Masked())
	}
	return out
}

// unmapBits is 96 for an IPv4-mapped IPv6 prefix, else 0.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return 96
	}
	return 0
}

// orDefault returns v, or def when v is zero.
func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}
