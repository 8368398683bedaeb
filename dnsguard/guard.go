package dnsguard

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Guard is the DNS guard: a forwarding resolver that answers allowed
// names only, pins their answers and learns the addresses into the data
// plane before it releases a reply. Create it with New; it is safe for
// concurrent use.
type Guard struct {
	opts    Options
	ttl     config.TTL
	deny    int // rcode for names off the allowlist
	match   *Matcher
	router  *router
	pin     pinner
	view    *view
	events  *limiter
	forward exchanger
	fw      *forwarder
	slots   chan struct{} // in-flight queries

	counts      counters
	intercepted interceptCounts
	pending     *pendingQueries // intercepted queries awaiting their answer
	forgetErrs  atomic.Uint64
	upstreamDur prometheus.Histogram
	learnDur    prometheus.Histogram
}

// New builds a guard for cfg. It fails when opts has no Learner, when an
// allowlist pattern or zone is malformed, when a name lies in no upstream
// zone, or when the TTL bounds or the deny response are invalid. New
// starts nothing: call Serve or ListenAndServe.
func New(cfg config.DNS, opts Options) (*Guard, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("dns guard: %w", err)
	}
	g := &Guard{opts: opts, ttl: cfg.TTL, pin: pinner{lan: opts.LANPrefixes}}

	if g.deny, err = denyRcode(cfg.DenyResponse); err != nil {
		return nil, fmt.Errorf("dns guard: %w", err)
	}
	if err := checkTTL(cfg.TTL); err != nil {
		return nil, fmt.Errorf("dns guard: %w", err)
	}
	if g.match, err = NewMatcher(cfg.Names); err != nil {
		return nil, fmt.Errorf("dns guard: %w", err)
	}
	if g.router, err = newRouter(cfg.Upstreams); err != nil {
		return nil, fmt.Errorf("dns guard: %w", err)
	}
	if err := g.checkRoutes(); err != nil {
		return nil, fmt.Errorf("dns guard: %w", err)
	}

	g.initState()
	return g, nil
}

// initState creates the learned view, the limits and the histograms.
func (g *Guard) initState() {
	g.view = newView(g.match.Rules(), g.opts.MaxAddrsPerName)
	g.intercepted = newInterceptCounts()
	g.pending = newPendingQueries()
	g.events = newLimiter(g.opts.EventInterval, g.opts.EventBurst)
	g.slots = make(chan struct{}, g.opts.MaxInFlight)
	g.upstreamDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "edgeward_dns_upstream_duration_seconds",
		Help:    "Time of one exchange with one upstream server, per transport attempt.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	g.learnDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "edgeward_dns_learn_duration_seconds",
		Help:    "Time from the upstream answer to the data plane holding its addresses.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
	})

	g.fw = newForwarder(g.opts.UpstreamTimeout, g.opts.SocketControl, func(d time.Duration) { g.upstreamDur.Observe(d.Seconds()) })
	g.forward = g.fw.exchange
}

// denyRcode maps the deny_response setting to an rcode.
func denyRcode(s string) (int, error) {
	switch s {
	case "", "refused":
		return dns.RcodeRefused, nil
	case "nxdomain":
		return dns.RcodeNameError, nil
	}
	return 0, fmt.Errorf("deny_response %q is not refused or nxdomain", s)
}

// checkTTL refuses bounds that would learn nothing or never expire.
func checkTTL(t config.TTL) error {
	if t.Min <= 0 || t.Max < t.Min {
		return fmt.Errorf("ttl bounds [%s, %s]: need 0 < min <= max", t.Min, t.Max)
	}
	return nil
}

// checkRoutes makes sure every allowlist entry has an upstream.
func (g *Guard) checkRoutes() error {
	for _, r := range g.match.Rules() {
		zone := strings.TrimPrefix(strings.TrimPrefix(r.Pattern, "**."), "*.")
		if g.router.route(zone) == nil {
			return fmt.Errorf("name %q: %w", r.Pattern, errNoUpstream)
		}
	}
	return nil
}

// Restore rebuilds the guard's view of learned destinations from entries
// read back from the data plane, typically after a daemon restart, so
// that the per-name cap and TTL rewriting keep working. Entries whose
// pattern is no longer configured, or whose lifetime is over, are
// ignored; Restore reports how many it kept. Call it before Serve.
func (g *Guard) Restore(entries []Learned) int {
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b Learned) int { return int(a.Expires - b.Expires) })

	now := g.opts.Now()
	kept := 0
	for _, l := range sorted {
		r := g.match.byPattern[l.Name]
		if r == nil || l.Expires <= 0 || !l.Addr.IsValid() {
			continue
		}
		l.Addr = l.Addr.Unmap()
		g.view.restore(r, l, now)
		kept++
	}
	return kept
}

// resolve answers one query from client: the whole path from the ACL to
// the reply. tcp says whether the client came over TCP. It never returns
// nil and counts exactly one result.
func (g *Guard) resolve(ctx context.Context, client netip.Addr, req *dns.Msg, tcp bool) *dns.Msg {
	reply, res := g.decide(ctx, client, req, tcp)
	g.counts[res].Add(1)
	return reply
}

// decide is resolve without the counting.
func (g *Guard) decide(ctx context.Context, client netip.Addr, req *dns.Msg, tcp bool) (*dns.Msg, result) {
	if !g.opts.AllowClient(client) {
		return g.rcode(req, dns.RcodeRefused), resultRefused
	}
	if rc := checkQuery(req); rc != dns.RcodeSuccess {
		return g.rcode(req, rc), resultMalformed
	}
	r := g.match.Match(req.Question[0].Name)
	if r == nil {
		return g.rcode(req, g.deny), resultDenied
	}

	select {
	case g.slots <- struct{}{}:
		defer func() { <-g.slots }()
	default:
		return g.rcode(req, dns.RcodeServerFailure), resultOverloaded
	}
	return g.forwardAndLearn(ctx, client, req, r, tcp)
}

// forwardAndLearn asks the upstream, judges its answer and learns the
// accepted addresses before it returns the reply.
func (g *Guard) forwardAndLearn(ctx context.Context, client netip.Addr, req *dns.Msg, r *Rule, tcp bool) (*dns.Msg, result) {
	up := g.router.route(strings.ToLower(strings.TrimSuffix(req.Question[0].Name, ".")))
	resp, err := g.forward(ctx, up, upstreamQuery(req))
	if err != nil {
		return g.rcode(req, dns.RcodeServerFailure), resultUpstreamError
	}
	answered := time.Now()

	v := g.judge(req, r, resp)
	if v.reason != "" {
		g.event(Event{Reason: v.reason, Pattern: r.Pattern, Name: req.Question[0].Name, Client: client, Addr: v.addr})
		return g.rejectReply(req, v.reason, tcp), v.res
	}
	if len(v.addrs) > 0 {
		if err := g.learn(ctx, r, req.Question[0].Name, v); err != nil {
			g.event(Event{Reason: ReasonLearnFailed, Pattern: r.Pattern, Name: req.Question[0].Name, Client: client, Err: err})
			return g.rcode(req, dns.RcodeServerFailure), resultLearnFailed
		}
		g.learnDur.Observe(time.Since(answered).Seconds())
	}

	keepClientCase(v.reply, req.Question[0].Name)
	return v.reply, v.res
}

// learn hands the accepted addresses of v, the answer to a query for
// qname, to the learner and, once it took them, records them in the view
// and passes evictions on. A learned lifetime never shrinks: a refresh
// asks for at least what is left, so a reply released earlier stays
// covered for its whole TTL.
func (g *Guard) learn(ctx context.Context, r *Rule, qname string, v verdict) error {
	now := g.opts.Now()
	entries := make([]Learned, 0, len(v.addrs))
	for _, a := range v.addrs {
		life := max(v.lifetime, g.view.remaining(r, a, now))
		entries = append(entries, Learned{Addr: a, Ports: r.Ports, Expires: life, Name: r.Pattern})
	}

	lctx, cancel := context.WithTimeout(ctx, g.opts.LearnTimeout)
	defer cancel()
	if err := g.opts.Learner.Learn(lctx, entries); err != nil {
		return fmt.Errorf("learn %d addresses for %s: %w", len(entries), r.Pattern, err)
	}

	name, _ := canonicalQuery(qname) // it matched r, so it is canonical
	evicted := g.view.commit(r, entries, name, now)
	g.forget(lctx, evicted)
	return nil
}

// Upstreams returns what the guard saw of every upstream server, in the
// order of the configuration. Safe for concurrent use.
func (g *Guard) Upstreams() []UpstreamState {
	var out []UpstreamState
	for _, up := range g.router.ups {
		for i := range up.servers {
			out = append(out, up.state(i))
		}
	}
	return out
}

// LearnedNames tells, for each of addrs that the guard holds, the query
// name that last taught it. An address restored from the data plane after
// a restart has no name until a query refreshes it (the kernel keeps only
// the allowlist entry), and one the guard does not hold is left out.
// Safe for concurrent use.
func (g *Guard) LearnedNames(addrs []netip.Addr) map[netip.Addr]string {
	return g.view.names(addrs, g.opts.Now())
}

// forget passes evicted entries to the learner when it is a Forgetter;
// failures are counted only, since the kernel expires entries anyway.
func (g *Guard) forget(ctx context.Context, evicted []Learned) {
	f, ok := g.opts.Learner.(Forgetter)
	if !ok || len(evicted) == 0 {
		return
	}
	if err := f.Forget(ctx, evicted); err != nil {
		g.forgetErrs.Add(1)
	}
}

// event hands e to the OnEvent hook if the rate limit allows it.
func (g *Guard) event(e Event) {
	if g.opts.OnEvent == nil {
		return
	}
	ok, suppressed := g.events.allow(g.opts.Now())
	if !ok {
		return
	}
	e.Suppressed = suppressed
	g.opts.OnEvent(e)
}
