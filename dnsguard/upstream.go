package dnsguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/miekg/dns"
)

// errNoUpstream is returned for a name in no configured zone; the config
// package makes every allowlist entry lie in one, so it signals a bug.
var errNoUpstream = errors.New("no upstream zone holds the name")

// upstream is the server set of one or more zones.
type upstream struct {
	zones   []string         // canonical, in the configured order
	servers []string         // host:port, in the configured order
	addrs   []netip.AddrPort // the servers, unmapped, in the same order
	health  []serverHealth   // by index of servers
	next    atomic.Int32     // the server that answered last; tried first
}

// serverHealth is what the guard saw of one upstream server, for status.
// Safe for concurrent use.
type serverHealth struct {
	mu          sync.Mutex
	answers     uint64
	failures    uint64
	lastAnswer  time.Time
	lastFailure time.Time
	lastError   string
}

// answered notes a usable answer at now.
func (h *serverHealth) answered(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers++
	h.lastAnswer = now
}

// failed notes a failed exchange at now; err stays as the last error.
func (h *serverHealth) failed(now time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	h.lastFailure = now
	h.lastError = err.Error()
}

// UpstreamState is what the guard saw of one upstream server since it
// was created (a reload that changes the dns section starts a new guard,
// and with it new states). Times are zero when the event has not
// happened yet.
type UpstreamState struct {
	Zones       []string // the zones the server answers for, canonical
	Server      string   // host:port
	Answers     uint64   // usable answers: neither SERVFAIL nor REFUSED
	Failures    uint64   // timeouts, transport errors, SERVFAIL, REFUSED
	LastAnswer  time.Time
	LastFailure time.Time
	LastError   string // of the last failure; it stays after a recovery
}

// state returns a snapshot of the server at index i of up.
func (up *upstream) state(i int) UpstreamState {
	h := &up.health[i]
	h.mu.Lock()
	defer h.mu.Unlock()
	return UpstreamState{
		Zones: append([]string(nil), up.zones...), Server: up.servers[i],
		Answers: h.answers, Failures: h.failures,
		LastAnswer: h.lastAnswer, LastFailure: h.lastFailure, LastError: h.lastError,
	}
}

// router picks the upstream of the longest zone that holds a name.
type router struct {
	zones map[string]*upstream
	ups   []*upstream // in the configured order
}

// newRouter indexes the upstreams by zone. It fails on a zone that is not
// a DNS name or an upstream without servers.
func newRouter(ups []config.Upstream) (*router, error) {
	r := &router{zones: map[string]*upstream{}}
	for i, u := range ups {
		if len(u.Servers) == 0 {
			return nil, fmt.Errorf("dns upstream %d: no servers", i)
		}

		up := &upstream{health: make([]serverHealth, len(u.Servers))}
		for _, s := range u.Servers {
			ap := netip.AddrPortFrom(s.Addr().Unmap(), s.Port())
			up.addrs = append(up.addrs, ap)
			up.servers = append(up.servers, ap.String())
		}
		for _, z := range u.Zones {
			zone, err := config.CanonicalName(z, false)
			if err != nil {
				return nil, fmt.Errorf("dns upstream %d: zone %q: %w", i, z, err)
			}
			r.zones[zone] = up
			up.zones = append(up.zones, zone)
		}
		r.ups = append(r.ups, up)
	}
	return r, nil
}

// route returns the upstream for a canonical name, or nil.
func (r *router) route(name string) *upstream {
	for zone, ok := name, true; ok; zone, ok = parentOf(zone) {
		if up := r.zones[zone]; up != nil {
			return up
		}
	}
	return nil
}

// exchanger sends a query to one upstream and returns its answer. It is a
// field of Guard so that the fuzz test can replace the network.
type exchanger func(ctx context.Context, up *upstream, q *dns.Msg) (*dns.Msg, error)

// forwarder holds the clients the guard uses toward upstream servers.
type forwarder struct {
	udp, tcp *dns.Client
	pool     *udpPool
	observe  func(time.Duration) // upstream latency of one exchange
}

// newForwarder returns a forwarder with the per-server timeout whose
// sockets go through control first, if it is set.
func newForwarder(timeout time.Duration, control func(string, string, syscall.RawConn) error, observe func(time.Duration)) *forwarder {
	udp := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: upstreamUDPSize, Dialer: &net.Dialer{Timeout: timeout, Control: control}}
	return &forwarder{
		udp:     udp,
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout, Dialer: &net.Dialer{Timeout: timeout, Control: control}},
		pool:    &udpPool{client: udp},
		observe: observe,
	}
}

// exchange asks the servers of up in turn, starting with the one that
// answered last, until one gives a usable answer: not SERVFAIL, not
// REFUSED, not a transport error. A truncated UDP answer is asked again
// over TCP from the same server; if that fails the truncated answer is
// returned, and the caller must not learn from it. Each outcome is noted
// in the server's health, except a failure caused by ctx ending: that
// says nothing about the server.
func (f *forwarder) exchange(ctx context.Context, up *upstream, q *dns.Msg) (*dns.Msg, error) {
	if up == nil {
		return nil, errNoUpstream
	}

	var errs []error
	start := int(up.next.Load())
	for i := range up.servers {
		at := (start + i) % len(up.servers)
		resp, err := f.ask(ctx, up.servers[at], q)
		if err == nil {
			up.health[at].answered(time.Now())
			up.next.Store(int32(at))
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
		up.health[at].failed(time.Now(), err)
	}
	return nil, fmt.Errorf("upstream: %w", errors.Join(errs...))
}

// ask runs one exchange with one server, with the TCP retry.
func (f *forwarder) ask(ctx context.Context, server string, q *dns.Msg) (*dns.Msg, error) {
	resp, err := f.once(ctx, f.udp, server, q)
	if err != nil {
		return nil, err
	}

	if resp.Truncated {
		if full, err := f.once(ctx, f.tcp, server, q); err == nil {
			resp = full
		}
	}
	if resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused {
		return nil, fmt.Errorf("%s answered %s", server, dns.RcodeToString[resp.Rcode])
	}
	return resp, nil
}

// once is one timed exchange over one transport; UDP goes through the
// socket pool, TCP uses a connection of its own.
func (f *forwarder) once(ctx context.Context, c *dns.Client, server string, q *dns.Msg) (*dns.Msg, error) {
	start := time.Now()
	var resp *dns.Msg
	var err error
	if c == f.udp {
		resp, err = f.pool.exchange(ctx, server, q)
	} else {
		resp, _, err = c.ExchangeContext(ctx, q, server)
	}
	f.observe(time.Since(start))
	if err != nil {
		return nil, fmt.Errorf("%s over %s: %w", server, c.Net, err)
	}
	return resp, nil
}
