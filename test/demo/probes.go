package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"

	sb "github.com/edgeward/edgeward/test/sandbox"
)

// row is one connection of the demo table.
// errProbeBroken marks a probe that could not try what its row tests: its
// failure says nothing of the policy, so it never passes for the drop a
// row expects.
var errProbeBroken = errors.New("the probe could not run")

type row struct {
	from   sb.Host
	to     string // what the destination is
	addr   string // address
	port   string // protocol/port, or "via proxy"
	expect bool   // true: must connect
	try    func(ctx context.Context, d *demo) error
}

func curlGet(from sb.Host, url string, proxy string, timeout time.Duration) func(context.Context, *demo) error {
	return func(ctx context.Context, d *demo) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		args := []string{"-o", "/dev/null", url}
		if proxy != "" {
			args = append(args, "-x", proxy)
		}
		_, err := d.sb.Curl(ctx, from, args...)
		return err
	}
}

func tcpEcho(from sb.Host, addr string, timeout time.Duration) func(context.Context, *demo) error {
	return func(_ context.Context, d *demo) error { return d.sb.EchoTCP(from, addr, timeout) }
}

func tcpConnect(from sb.Host, addr string, timeout time.Duration) func(context.Context, *demo) error {
	return func(_ context.Context, d *demo) error { return d.sb.DialTCP(from, addr, timeout) }
}

func udpEcho(from sb.Host, addr string, timeout time.Duration) func(context.Context, *demo) error {
	return func(_ context.Context, d *demo) error { return d.sb.EchoUDP(from, addr, timeout) }
}

// rows lists the demo's connections from one host. Allowed ones get 5 s to
// succeed; denied ones 1.5 s, since a drop shows only as silence.
func rows(from sb.Host) []row {
	const ok, deny = 5 * time.Second, 1500 * time.Millisecond
	return []row{
		{from, "approved endpoint", sb.EndpointHost4, "tcp/443 (curl)", true, curlGet(from, sb.URL(sb.EndpointHost4), "", ok)},
		{from, "approved endpoint", sb.EndpointHost6, "tcp/443 (curl)", true, curlGet(from, sb.URL(sb.EndpointHost6), "", ok)},
		{from, "approved endpoint", sb.EndpointHost4, "tcp/8443", false, tcpEcho(from, sb.Addr(sb.EndpointHost4, sb.UnlistedPort), deny)},
		{from, "approved endpoint", sb.EndpointHost4, "udp/5353", true, udpEcho(from, sb.Addr(sb.EndpointHost4, sb.UDPEchoPort), ok)},
		{from, "internet host", sb.InternetHost4, "tcp/443 (curl)", false, curlGet(from, sb.URL(sb.InternetHost4), "", deny)},
		{from, "internet host", sb.InternetHost6, "tcp/443 (curl)", false, curlGet(from, sb.URL(sb.InternetHost6), "", deny)},
		{from, "internet host", sb.InternetHost4, "udp/5353", false, udpEcho(from, sb.Addr(sb.InternetHost4, sb.UDPEchoPort), deny)},
		{from, "internet host", sb.InternetHost4, "tcp/443 via proxy", true, curlGet(from, sb.URL(sb.InternetHost4), sb.ProxyURL4, ok)},
		{from, "VPC endpoint (tunnel)", sb.VPCEndpoint4, "tcp/443 (curl)", true, curlGet(from, sb.URL(sb.VPCEndpoint4), "", ok)},
		{from, "VPC endpoint (tunnel)", sb.VPCEndpoint6, "tcp/443 (curl)", true, curlGet(from, sb.URL(sb.VPCEndpoint6), "", ok)},
		{from, "VPC broker (tunnel)", sb.VPCEndpoint4, "tcp/8883 (connect)", true, tcpConnect(from, sb.Addr(sb.VPCEndpoint4, sb.MQTTSPort), ok)},
	}
}

// resolveRow asks the gateway's DNS guard for name from the OT host; it
// "passes" when the answer carries an address.
func resolveRow(name string) func(context.Context, *demo) error {
	return func(_ context.Context, d *demo) error {
		resp, err := d.sb.Resolve(sb.OT, name)
		if err != nil {
			return err
		}
		if sb.FirstA(resp) == "" {
			return fmt.Errorf("%s", dns.RcodeToString[resp.Rcode])
		}
		return nil
	}
}

// dnsRows show the DNS guard: an allowed name opens its address for its
// ports, the answer is in the kernel before the client has it; other names
// are refused, and an answer outside the name's answers_in is rejected.
func dnsRows() []row {
	const ok, deny = 5 * time.Second, 1500 * time.Millisecond
	learned := sb.Addr("198.18.1.1", sb.LearnedPort)
	return []row{
		{sb.OT, "never resolved", "198.18.1.2", "tcp/8883", false, tcpEcho(sb.OT, sb.Addr("198.18.1.2", sb.LearnedPort), deny)},
		{sb.OT, "DNS h1.partner.test", sb.GatewayLAN4, "udp/53", true, resolveRow("h1.partner.test")},
		{sb.OT, "just resolved", "198.18.1.1", "tcp/8883", true, tcpEcho(sb.OT, learned, ok)},
		{sb.OT, "DNS evil.example.test", sb.GatewayLAN4, "udp/53 (refused)", false, resolveRow("evil.example.test")},
		{sb.OT, "DNS spoof.partner.test", sb.GatewayLAN4, "udp/53 (public addr)", false, resolveRow("spoof.partner.test")},
	}
}

// transparentRows show transparent mode: DNS sent around the guard,
// straight to a resolver, is judged on its way through the gateway.
func transparentRows() []row {
	const ok, deny = 5 * time.Second, 1500 * time.Millisecond
	upstream, rogue := sb.Addr(sb.CloudResolver4, 53), sb.Addr(sb.RogueResolver4, 53)
	return []row{
		{sb.OT, "DNS h2 at cloud resolver", sb.CloudResolver4, "udp/53 (allowed name)", true, queryRow(sb.OT, upstream, "h2.partner.test", false, ok)},
		{sb.OT, "just resolved that way", "198.18.1.2", "tcp/8883", true, tcpEcho(sb.OT, sb.Addr("198.18.1.2", sb.LearnedPort), ok)},
		{sb.OT, "DNS x.y at cloud resolver", sb.CloudResolver4, "udp/53 (not listed)", false, queryRow(sb.OT, upstream, "x.y.partner.test", false, deny)},
		{sb.OT, "DNS h3 at rogue resolver", sb.RogueResolver4, "udp/53", false, queryRow(sb.OT, rogue, "h3.partner.test", false, deny)},
		{sb.OT, "DNS h3 at cloud resolver", sb.CloudResolver4, "tcp/53", false, queryRow(sb.OT, upstream, "h3.partner.test", true, deny)},
		{sb.Gateway, "DNS h4 at rogue resolver", sb.RogueResolver4, "udp/53", false, queryRow(sb.Gateway, rogue, "h4.partner.test", false, deny)},
	}
}

// queryRow asks server for name from host h; it "passes" when the answer
// carries an address.
func queryRow(h sb.Host, server, name string, tcp bool, timeout time.Duration) func(context.Context, *demo) error {
	return func(_ context.Context, d *demo) error {
		resp, err := d.sb.Query(h, server, name, tcp, timeout)
		if err != nil {
			return err
		}
		if sb.FirstA(resp) == "" {
			return fmt.Errorf("%s", dns.RcodeToString[resp.Rcode])
		}
		return nil
	}
}

// probeAll tries every row from the gateway and from the OT host, prints
// the table and reports whether every observation matched.
func (d *demo) probeAll(ctx context.Context) bool {
	fmt.Println("\nConnections (expected: what the policy says; observed: what happened):")
	const format = "  %-18s %-25s %-16s %-22s %-9s %-9s%s\n"
	fmt.Printf(format, "SOURCE", "DESTINATION", "ADDRESS", "PORT", "EXPECTED", "OBSERVED", "")

	all := true
	allRows := append(rows(sb.Gateway), rows(sb.OT)...)
	allRows = append(allRows, dnsRows()...)
	allRows = append(allRows, transparentRows()...)
	for _, r := range append(allRows, guardRows()...) {
		if ctx.Err() != nil {
			break
		}
		err := r.try(ctx, d)
		observed := verdict(err == nil)
		if errors.Is(err, errProbeBroken) {
			observed = "error"
		}
		mark := ""
		if (err == nil) != r.expect || errors.Is(err, errProbeBroken) {
			all = false
			mark = "  <-- differs: " + fmt.Sprint(err)
		}
		fmt.Printf(format, source(r.from), r.to, r.addr, r.port, verdict(r.expect), observed, mark)
	}
	return all
}

func verdict(connected bool) string {
	if connected {
		return "pass"
	}
	return "drop"
}

func source(h sb.Host) string {
	if h == sb.OT {
		return "OT host " + sb.OTAddr4
	}
	return "gateway"
}
