package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
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

	var pc net.PacketConn
	err := s.Do(VPC, func() error {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(CloudResolver4, "53"))
		return err
	})
	if err != nil {
		return fmt.Errorf("cloud resolver: %w", err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(answerCloud)}
	s.srv.track(shutdowner{srv})
	go srv.ActivateAndServe()
	return nil
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
