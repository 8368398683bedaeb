package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// The cloud resolver: an authoritative server for partner.test at
// CloudResolver4:53 in the VPC, which the gateway's DNS guard reaches
// through the tunnel. Its answers:
//
//	hN.partner.test     198.18.1.N (N 1..250), TTL 60  a private-link host
//	short.partner.test  198.18.2.1, TTL 1
//	spoof.partner.test  192.0.2.80, TTL 60             outside any answers_in
//
// 198.18.1.0/24 and 198.18.2.0/24 are local to the uplink side, with a
// TCP echo on LearnedPort for every address.
const (
	CloudResolver4 = "10.20.0.2"
	CloudZone      = "partner.test"
	LearnedPort    = 8883
)

// RogueResolver4 is a resolver in the VPC that no config names: it answers
// every A query with 198.18.1.77 over UDP and TCP. DNS sent to it comes
// back only if nothing stops it on the way.
const RogueResolver4 = "10.20.0.3"

// ResolverQuery is one query a sandbox resolver received.
type ResolverQuery struct {
	Server string // CloudResolver4 or RogueResolver4
	Name   string // as asked, lower case
	TCP    bool
}

// queryLog records what the sandbox's resolvers received.
type queryLog struct {
	mu      sync.Mutex
	queries []ResolverQuery
}

func (l *queryLog) add(q ResolverQuery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queries = append(l.queries, q)
}

// ResolverQueries returns every query the cloud and rogue resolvers
// received so far, oldest first.
func (s *Sandbox) ResolverQueries() []ResolverQuery {
	s.queries.mu.Lock()
	defer s.queries.mu.Unlock()
	return append([]ResolverQuery(nil), s.queries.queries...)
}

// cloudAnswer returns the address and TTL for a query name, if any.
func cloudAnswer(name string) (netip.Addr, uint32, bool) {
	label, _, _ := strings.Cut(strings.TrimSuffix(strings.ToLower(name), "."), "."+CloudZone)
	switch {
	case label == "spoof":
		return netip.MustParseAddr(InternetHost4), 60, true
	case label == "short":
		return netip.MustParseAddr("198.18.2.1"), 1, true
	case strings.HasPrefix(label, "h"):
		n, err := strconv.Atoi(label[1:])
		if err != nil || n < 1 || n > 250 {
			return netip.Addr{}, 0, false
		}
		return netip.AddrFrom4([4]byte{198, 18, 1, byte(n)}), 60, true
	}
	return netip.Addr{}, 0, false
}

// startResolver starts the cloud resolver and the learned hosts.
func (s *Sandbox) startResolver() error {
	for _, step := range []struct {
		h    Host
		args []string
	}{
		{VPC, []string{"addr", "add", CloudResolver4 + "/32", "dev", "lo"}},
		{WAN, []string{"route", "add", "local", "198.18.1.0/24", "dev", "lo"}},
		{WAN, []string{"route", "add", "local", "198.18.2.0/24", "dev", "lo"}},
	} {
		if err := s.ip(step.h, step.args...); err != nil {
			return err
		}
	}
	if err := s.ListenTCPEcho(WAN, fmt.Sprintf("0.0.0.0:%d", LearnedPort)); err != nil {
		return err
	}

	if err := s.serveDNS(CloudResolver4, answerCloud); err != nil {
		return fmt.Errorf("cloud resolver: %w", err)
	}
	if err := s.ip(VPC, "addr", "add", RogueResolver4+"/32", "dev", "lo"); err != nil {
		return err
	}
	if err := s.serveDNS(RogueResolver4, answerRogue); err != nil {
		return fmt.Errorf("rogue resolver: %w", err)
	}
	return nil
}

// serveDNS serves answer on addr:53 in the VPC, over UDP and TCP, and
// logs every query.
func (s *Sandbox) serveDNS(addr string, answer dns.HandlerFunc) error {
	var pc net.PacketConn
	var l net.Listener
	err := s.Do(VPC, func() error {
		var err error
		if pc, err = net.ListenPacket("udp", net.JoinHostPort(addr, "53")); err != nil {
			return err
		}
		l, err = net.Listen("tcp", net.JoinHostPort(addr, "53"))
		return err
	})
	if err != nil {
		if pc != nil {
			pc.Close()
		}
		return err
	}

	logged := func(w dns.ResponseWriter, req *dns.Msg) {
		if len(req.Question) == 1 {
			_, tcp := w.RemoteAddr().(*net.TCPAddr)
			s.queries.add(ResolverQuery{Server: addr, Name: strings.ToLower(req.Question[0].Name), TCP: tcp})
		}
		answer(w, req)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: dns.HandlerFunc(logged)}, {Listener: l, Handler: dns.HandlerFunc(logged)}} {
		if err := startDNS(srv); err != nil {
			return fmt.Errorf("resolver %s: %w", addr, err)
		}
		s.srv.track(shutdowner{srv})
	}
	return nil
}

// startDNS serves srv and returns once it runs: a server shut down before
// that fails to close ("server not started") and keeps its socket.
func startDNS(srv *dns.Server) error {
	started := make(chan struct{})
	failed := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { failed <- srv.ActivateAndServe() }()

	select {
	case <-started:
		return nil
	case err := <-failed:
		return fmt.Errorf("dns server: %w", err)
	case <-time.After(5 * time.Second):
		return errors.New("dns server did not start within 5s")
	}
}

// answerRogue answers every A query with 198.18.1.77.
func answerRogue(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	if len(req.Question) == 1 && req.Question[0].Qtype == dns.TypeA {
		resp.Answer = append(resp.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.IPv4(198, 18, 1, 77),
		})
	}
	w.WriteMsg(resp)
}

// shutdowner adapts a dns.Server to io.Closer.
type shutdowner struct{ srv *dns.Server }

func (s shutdowner) Close() error { return s.srv.Shutdown() }

func answerCloud(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	addr, ttl, ok := cloudAnswer(q.Name)
	switch {
	case !ok:
		resp.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA && addr.Is4():
		resp.Answer = append(resp.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   addr.AsSlice(),
		})
	}
	w.WriteMsg(resp)
}

// Resolve asks the gateway's DNS guard (at its LAN address) for the A
// record of name, from host h.
func (s *Sandbox) Resolve(h Host, name string) (*dns.Msg, error) {
	var resp *dns.Msg
	err := s.Do(h, func() error {
		c := &dns.Client{Timeout: 3 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		var err error
		resp, _, err = c.Exchange(m, Addr(GatewayLAN4, 53))
		return err
	})
	return resp, err
}

// Query asks server (ip:port) for the A record of name from host h,
// over TCP when tcp is set, waiting at most timeout.
func (s *Sandbox) Query(h Host, server, name string, tcp bool, timeout time.Duration) (*dns.Msg, error) {
	var resp *dns.Msg
	err := s.Do(h, func() error {
		c := &dns.Client{Timeout: timeout}
		if tcp {
			c.Net = "tcp"
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		var err error
		resp, _, err = c.Exchange(m, server)
		return err
	})
	return resp, err
}

// FirstA returns the first IPv4 address of an answer, or "".
func FirstA(resp *dns.Msg) string {
	if resp == nil {
		return ""
	}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

// ip runs `ip -n NS args...` for host h.
func (s *Sandbox) ip(h Host, args ...string) error {
	return run(context.Background(), "ip", append([]string{"-n", s.NetNS(h)}, args...)...)
}
