package dnsguard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/miekg/dns"
)

// errNoUpstream is returned for a name in no configured zone; the config
// package makes every allowlist entry lie in one, so it signals a bug.
var errNoUpstream = errors.New("no upstream zone holds the name")

// upstream is the server set of one or more zones.
type upstream struct {
	servers []string     // host:port, in the configured order
	next    atomic.Int32 // the server that answered last; tried first
}

// router picks the upstream of the longest zone that holds a name.
type router struct {
	zones map[string]*upstream
}

// newRouter indexes the upstreams by zone. It fails on a zone that is not
// a DNS name or an upstream without servers.
func newRouter(ups []config.Upstream) (*router, error) {
	r := &router{zones: map[string]*upstream{}}
	for i, u := range ups {
		if len(u.Servers) == 0 {
			return nil, fmt.Errorf("dns upstream %d: no servers", i)
		}

		up := &upstream{}
		for _, s := range u.Servers {
			up.servers = append(up.servers, netip.AddrPortFrom(s.Addr().Unmap(), s.Port()).String())
		}
		for _, z := range u.Zones {
			zone, err := config.CanonicalName(z, false)
			if err != nil {
				return nil, fmt.Errorf("dns upstream %d: zone %q: %w", i, z, err)
			}
			r.zones[zone] = up
		}
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

// newForwarder returns a forwarder with the per-server timeout.
func newForwarder(timeout time.Duration, observe func(time.Duration)) *forwarder {
	udp := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: upstreamUDPSize}
	return &forwarder{
		udp:     udp,
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
		pool:    &udpPool{client: udp},
		observe: observe,
	}
}

// exchange asks the servers of up in turn, starting with the one that
// answered last, until one gives a usable answer: not SERVFAIL, not
// REFUSED, not a transport error. A truncated UDP answer is asked again
// over TCP from the same server; if that fails the truncated answer is
// returned, and the caller must not learn from it.
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
			up.next.Store(int32(at))
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
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
