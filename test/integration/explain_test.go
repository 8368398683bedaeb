package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// explainRow is one connection of the demo: how to ask explain about it,
// what explain must answer, and the real connection that must land in the
// counter cell explain names.
type explainRow struct {
	name    string
	args    []string // explain's arguments after -c and -json
	verdict string
	reason  string
	rule    string // the rule's name, for endpoints and learned names
	hook    string // empty: no program judges it
	real    *probe // nil: only explained
}

// explainRows mirror the rows of the demo (test/demo/probes.go), from the
// gateway and from the OT host.
func explainRows() []explainRow {
	var rows []explainRow
	for _, from := range []sb.Host{sb.Gateway, sb.OT} {
		var via []string
		hook, tunnel := "tc_egress", explainRow{verdict: "pass", reason: "not_enforced"}
		if from == sb.OT {
			via, hook, tunnel = []string{"-from", sb.GatewayLANIface}, "xdp_lan", explainRow{verdict: "pass", reason: "vpn", hook: "xdp_lan"}
		}
		row := func(name, proto, dst, verdict, reason, rule string, real *probe) explainRow {
			args := append(append([]string{}, via...), proto, dst)
			return explainRow{name: fmt.Sprintf("%s: %s", from, name), args: args, verdict: verdict, reason: reason, rule: rule, hook: hook, real: real}
		}
		tunnelRow := func(name, proto, dst string, real *probe) explainRow {
			r := row(name, proto, dst, tunnel.verdict, tunnel.reason, "", real)
			r.hook = tunnel.hook
			return r
		}
		rows = append(rows,
			row("endpoint https", "tcp", hostPort(sb.EndpointHost4, sb.HTTPSPort), "pass", "endpoint", "partner-api",
				&probe{kind: "https", from: from, addr: httpsURL(sb.EndpointHost4), allow: true}),
			row("endpoint https ipv6", "tcp", hostPort(sb.EndpointHost6, sb.HTTPSPort), "pass", "endpoint", "partner-api",
				&probe{kind: "https", from: from, addr: httpsURL(sb.EndpointHost6), allow: true}),
			row("endpoint, unlisted port", "tcp", hostPort(sb.EndpointHost4, sb.UnlistedPort), "drop", "no_rule", "",
				&probe{kind: "tcp-echo", from: from, addr: hostPort(sb.EndpointHost4, sb.UnlistedPort)}),
			row("endpoint udp", "udp", hostPort(sb.EndpointHost4, sb.UDPEchoPort), "pass", "endpoint", "partner-api",
				&probe{kind: "udp-echo", from: from, addr: hostPort(sb.EndpointHost4, sb.UDPEchoPort), allow: true}),
			row("internet https", "tcp", hostPort(sb.InternetHost4, sb.HTTPSPort), "drop", "no_rule", "",
				&probe{kind: "https", from: from, addr: httpsURL(sb.InternetHost4)}),
			row("internet https ipv6", "tcp", hostPort(sb.InternetHost6, sb.HTTPSPort), "drop", "no_rule", "",
				&probe{kind: "https", from: from, addr: httpsURL(sb.InternetHost6)}),
			row("internet udp", "udp", hostPort(sb.InternetHost4, sb.UDPEchoPort), "drop", "no_rule", "",
				&probe{kind: "udp-echo", from: from, addr: hostPort(sb.InternetHost4, sb.UDPEchoPort)}),
			row("proxy", "tcp", hostPort(sb.ProxyAddr4, sb.ProxyPort), "pass", "proxy", "",
				&probe{kind: "https-proxy", from: from, addr: httpsURL(sb.InternetHost4), allow: true}),
			tunnelRow("vpc https", "tcp", hostPort(sb.VPCEndpoint4, sb.HTTPSPort),
				&probe{kind: "https", from: from, addr: httpsURL(sb.VPCEndpoint4), allow: true}),
			tunnelRow("vpc https ipv6", "tcp", hostPort(sb.VPCEndpoint6, sb.HTTPSPort),
				&probe{kind: "https", from: from, addr: httpsURL(sb.VPCEndpoint6), allow: true}),
		)
	}

	lan := []string{"-from", sb.GatewayLANIface}
	return append(rows,
		explainRow{name: "OT: never resolved", args: append(lan, "tcp", hostPort("198.18.1.2", sb.LearnedPort)), verdict: "drop", reason: "no_rule", hook: "xdp_lan",
			real: &probe{kind: "tcp-echo", from: sb.OT, addr: hostPort("198.18.1.2", sb.LearnedPort)}},
		explainRow{name: "OT: DNS to the guard", args: append(lan, "udp", hostPort(sb.GatewayLAN4, 53)), verdict: "pass", reason: "service", hook: "xdp_lan"},
		explainRow{name: "OT: just resolved", args: append(lan, "tcp", hostPort("198.18.1.1", sb.LearnedPort)), verdict: "pass", reason: "learned", rule: "*.partner.test", hook: "xdp_lan",
			real: &probe{kind: "tcp-echo", from: sb.OT, addr: hostPort("198.18.1.1", sb.LearnedPort), allow: true}},
	)
}

// TestExplainMatchesDataPlane: for every connection of the demo, explain
// gives the verdict the data plane gives the real connection, names the
// rule, and changes no counter.
func TestExplainMatchesDataPlane(t *testing.T) {
	// Learned entries live 10 minutes: longer than the test.
	g := newGateway(t, demopolicy.Params{TTLMin: "10m", TTLMax: "1h"})
	g.start()
	if _, err := g.sb.Resolve(sb.OT, "h1.partner.test"); err != nil {
		t.Fatal(err)
	}
	g.quietTunnel()

	rows := explainRows()
	answers := make([]explainAnswer, len(rows))
	before := g.quietCounters()
	for i, r := range rows {
		answers[i] = g.explain(r.args...)
	}
	if diff := cmp.Diff(before, g.quietCounters()); diff != "" {
		t.Errorf("explaining %d packets changed the kernel's counters (-before +after):\n%s", len(rows), diff)
	}

	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			a := answers[i]
			if a.Verdict != r.verdict || a.Reason != r.reason || a.Rule.Name != r.rule || a.Hook != r.hook {
				t.Errorf("explain %v: %s %s rule %q hook %q, want %s %s rule %q hook %q",
					r.args, a.Verdict, a.Reason, a.Rule.Name, a.Hook, r.verdict, r.reason, r.rule, r.hook)
			}
			if r.hook != "" && (a.Generation != 1 || !a.SameAsLoaded) {
				t.Errorf("generation %d, same as loaded %v: want 1 and true", a.Generation, a.SameAsLoaded)
			}
			if r.real != nil && r.hook != "" {
				g.checkRealVerdict(r)
			}
		})
	}
}

// explainAnswer is the part of `edgeward explain -json` the test reads.
type explainAnswer struct {
	Hook, Verdict, Reason string
	Generation            uint32
	SameAsLoaded          bool `json:"same_as_loaded"`
	Rule                  struct{ Kind, Name string }
	Warnings              []string
}

func (g *gateway) explain(args ...string) explainAnswer {
	g.t.Helper()
	out, err := g.cli(append([]string{"explain", "-c", g.cfgPath, "-json"}, args...)...)
	if err != nil {
		g.t.Fatalf("edgeward explain %v: %v\n%s", args, err, out)
	}
	var a explainAnswer
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		g.t.Fatalf("edgeward explain %v: %v\n%s", args, err, out)
	}
	if len(a.Warnings) > 0 {
		g.t.Errorf("edgeward explain %v warns: %v", args, a.Warnings)
	}
	return a
}

// checkRealVerdict makes the real connection of r and checks that the
// data plane counted it where explain said.
func (g *gateway) checkRealVerdict(r explainRow) {
	g.t.Helper()
	cell := fmt.Sprintf("%s/%s/%s", r.hook, r.verdict, r.reason)
	before := g.counters()[cell]
	err := g.try(*r.real)
	if r.real.allow != (err == nil) {
		g.t.Errorf("real connection: allowed %v, error %v", r.real.allow, err)
	}
	if after := g.counters()[cell]; after == before {
		g.t.Errorf("the real connection left %s at %d: the data plane judged it otherwise than explain", cell, before)
	}
}

// quietTunnel stops the gateway's WireGuard keepalives and waits out the
// keepalive WireGuard sends 10 s after it last received data, so that no
// packet crosses the uplink unless the test sends it.
func (g *gateway) quietTunnel() {
	g.t.Helper()
	wg, _ := g.sb.WireGuard()
	peers, err := g.sbOutput(sb.Gateway, "wg", "show", wg, "peers")
	if err != nil {
		g.t.Fatal(err)
	}
	for _, peer := range strings.Fields(peers) {
		if _, err := g.sbOutput(sb.Gateway, "wg", "set", wg, "peer", peer, "persistent-keepalive", "0"); err != nil {
			g.t.Fatal(err)
		}
	}
	time.Sleep(11 * time.Second)
}

// quietCounters are the kernel's counters without the cells of what links
// need (ARP, neighbour discovery, MLD, DHCP), which come and go on their
// own.
func (g *gateway) quietCounters() map[string]uint64 {
	out := g.counters()
	for cell := range out {
		for _, noise := range []string{"/arp", "/ndp", "/mld", "/dhcp"} {
			if strings.HasSuffix(cell, noise) {
				delete(out, cell)
			}
		}
	}
	return out
}

func (g *gateway) sbOutput(h sb.Host, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(g.t.Context(), 10*time.Second)
	defer cancel()
	out, err := g.sb.Command(ctx, h, name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %v: %w\n%s", name, args, err, out)
	}
	return string(out), nil
}
