package dnsguard

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/miekg/dns"
)

// seenQuery is one query a scripted upstream received.
type seenQuery struct {
	Name    string
	Type    uint16
	TCP     bool
	UDPSize uint16 // 0 without EDNS
}

// script answers one upstream query; nil means stay silent.
type script func(q *dns.Msg, tcp bool) *dns.Msg

// scripted is a miekg/dns server on 127.0.0.1, UDP and TCP on one port,
// whose answers a test sets.
type scripted struct {
	addr netip.AddrPort

	mu     sync.Mutex
	answer script
	seen   []seenQuery
}

// startUpstream starts a scripted upstream, stopped at test cleanup.
func startUpstream(t testing.TB, answer script) *scripted {
	t.Helper()
	s := &scripted{answer: answer}

	pc, l := listenSamePort(t)
	s.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: l, Handler: s}} {
		startServer(t, srv)
	}
	return s
}

// listenSamePort binds UDP and TCP on one loopback port, in a bounded
// number of attempts.
func listenSamePort(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		pc.Close()
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return nil, nil
}

// startServer runs srv until test cleanup.
func startServer(t testing.TB, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
}

// ServeDNS records the query and writes the scripted answer.
func (s *scripted) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	sq := seenQuery{Name: q.Question[0].Name, Type: q.Question[0].Qtype, TCP: tcp}
	if opt := q.IsEdns0(); opt != nil {
		sq.UDPSize = opt.UDPSize()
	}

	s.mu.Lock()
	s.seen = append(s.seen, sq)
	answer := s.answer
	s.mu.Unlock()

	if answer == nil {
		return
	}
	if m := answer(q, tcp); m != nil {
		_ = w.WriteMsg(m)
	}
}

// queries returns what the upstream received so far.
func (s *scripted) queries() []seenQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenQuery(nil), s.seen...)
}

// answerWith returns a script that answers every query with the records
// given in presentation format, and rcode. The records are parsed once
// and only read afterwards.
func answerWith(rcode int, records ...string) script {
	rrs := mustRRs(records...)
	return func(q *dns.Msg, _ bool) *dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		m.Answer = rrs
		return m
	}
}

// mustRRs parses records in presentation format.
func mustRRs(records ...string) []dns.RR {
	var out []dns.RR
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		out = append(out, rr)
	}
	return out
}

// normRRs returns the records in miekg's presentation form, for
// comparisons.
func normRRs(records ...string) []string {
	out := []string{}
	for _, rr := range mustRRs(records...) {
		out = append(out, rr.String())
	}
	return out
}

// fakeLearner records what it learns and forgets. It can fail, or block
// each Learn until release is closed.
type fakeLearner struct {
	mu        sync.Mutex
	learned   []Learned
	forgotten []Learned
	err       error
	release   chan struct{} // nil: do not block
	entered   chan struct{} // receives once per Learn call, if not nil
}

// Learn implements Learner.
func (f *fakeLearner) Learn(ctx context.Context, entries []Learned) error {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.learned = append(f.learned, entries...)
	return nil
}

// Forget implements Forgetter.
func (f *fakeLearner) Forget(_ context.Context, entries []Learned) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgotten = append(f.forgotten, entries...)
	return nil
}

// take returns and clears what was learned and forgotten.
func (f *fakeLearner) take() (learned, forgotten []Learned) {
	f.mu.Lock()
	defer f.mu.Unlock()
	learned, forgotten = f.learned, f.forgotten
	f.learned, f.forgotten = nil, nil
	return learned, forgotten
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// newFakeClock starts at a fixed instant.
func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// running is a guard serving on loopback sockets.
type running struct {
	g        *Guard
	udp, tcp string
}

// startGuard builds a guard and serves it on 127.0.0.1 until cleanup.
func startGuard(t testing.TB, cfg config.DNS, opts Options) *running {
	t.Helper()
	g, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		t.Fatalf("listen tcp: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, []net.PacketConn{pc}, []net.Listener{l}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &running{g: g, udp: pc.LocalAddr().String(), tcp: l.Addr().String()}
}

// ask sends m to the guard over UDP (or TCP) from the local address
// from ("" for any) and returns the reply.
func (r *running) ask(t testing.TB, m *dns.Msg, tcp bool, from string) (*dns.Msg, error) {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	server := r.udp
	if tcp {
		c.Net, server = "tcp", r.tcp
	}
	if from != "" {
		c.Dialer = &net.Dialer{Timeout: c.Timeout, LocalAddr: localAddr(from, tcp)}
	}

	reply, _, err := c.Exchange(m, server)
	return reply, err
}

// localAddr is a client socket address on ip with any port.
func localAddr(ip string, tcp bool) net.Addr {
	if tcp {
		return &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	return &net.UDPAddr{IP: net.ParseIP(ip)}
}

// query builds a query for name and qtype, with EDNS when size > 0.
func query(name string, qtype uint16, size uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if size > 0 {
		m.SetEdns0(size, false)
	}
	return m
}

// ports is a shorthand for one TCP port.
func tcpPort(p uint16) []config.PortRange {
	return []config.PortRange{{Proto: config.ProtoTCP, First: p, Last: p}}
}

// prefixes parses CIDRs.
func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// cmpAddrs compares netip values by their comparable form.
var cmpAddrs = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// setAnswer replaces the upstream's script.
func (s *scripted) setAnswer(answer script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = answer
}
