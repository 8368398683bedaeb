package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

var (
	upstreamDNS = hostPort(sb.CloudResolver4, 53)
	rogueDNS    = hostPort(sb.RogueResolver4, 53)
)

// TestTransparentDNS: with transparent mode, DNS that bypasses the guard's
// listener is judged on its way: allowed names reach their upstream and
// their answers are learned on the way back, whoever asks; other names,
// other resolvers and DNS over TCP get nowhere.
func TestTransparentDNS(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.start()

	for _, from := range []sb.Host{sb.OT, sb.Gateway} {
		t.Run(string(from), func(t *testing.T) {
			name, addr := "h5.partner.test", "198.18.1.5"
			if from == sb.Gateway {
				name, addr = "h7.partner.test", "198.18.1.7"
			}
			g.transparentRows(t, from, name, addr)
		})
	}

	t.Run("random subdomains", func(t *testing.T) {
		var names []string
		for range 30 {
			names = append(names, randomLabel()+"."+randomLabel()+".partner.test")
		}
		for _, n := range names {
			if resp, err := g.sb.Query(sb.OT, upstreamDNS, n, false, 200*time.Millisecond); err == nil {
				t.Errorf("%s (not on the list) answered: %v", n, resp)
			}
		}
		g.checkNeverReached(t, names...)
	})

	t.Run("rules flushed by another program", func(t *testing.T) {
		if _, err := g.sbOutput(sb.Gateway, "iptables", "-F", "EDGEWARD-DNS-FWD"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, "the daemon restores the flushed rules", func() bool {
			return g.metricValue("edgeward_dns_rules_restored_total") >= 1
		})
		if resp, err := g.sb.Query(sb.OT, rogueDNS, "h14.partner.test", false, time.Second); err == nil {
			t.Errorf("a resolver no config names answered after the restore: %v", resp)
		}
		g.checkNeverReached(t, "h14.partner.test")
	})

	t.Run("status", func(t *testing.T) {
		out, err := g.cli("status", "-c", g.cfgPath, "-json")
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		var st struct {
			DNSRules string `json:"dns_rules"`
			Daemon   struct {
				DNS struct {
					Transparent struct {
						Queue       uint16
						Intercepted map[string]map[string]uint64
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		tr := st.Daemon.DNS.Transparent
		if st.DNSRules != "intact" || tr.Queue != 53 || tr.Intercepted["query"]["allowed"] == 0 {
			t.Errorf("status: rules %q, queue %d, intercepted %v", st.DNSRules, tr.Queue, tr.Intercepted)
		}
	})

	counts := g.interceptCounts()
	for _, cell := range []string{"query/allowed", "answer/allowed", "query/denied", "query/wrong_server"} {
		if counts[cell] == 0 {
			t.Errorf("edgeward_dns_intercepted_total{%s} is 0; counts %v", cell, counts)
		}
	}
}

// transparentRows asks from host h: the upstream for an allowed name (then
// connects to its address), the upstream for a name off the list, the
// rogue resolver for the allowed name, and the upstream over TCP.
func (g *gateway) transparentRows(t *testing.T, h sb.Host, name, addr string) {
	t.Helper()
	resp, err := g.sb.Query(h, upstreamDNS, name, false, 3*time.Second)
	if err != nil || sb.FirstA(resp) != addr {
		t.Fatalf("allowed name %s through the gateway: %v %v", name, resp, err)
	}
	if err := g.sb.EchoTCP(h, hostPort(addr, sb.LearnedPort), 3*time.Second); err != nil {
		t.Errorf("connect to %s, learned on the way through: %v", addr, err)
	}

	denied := "a." + randomLabel() + ".partner.test"
	if resp, err := g.sb.Query(h, upstreamDNS, denied, false, time.Second); err == nil {
		t.Errorf("name off the list answered: %v", resp)
	}
	if resp, err := g.sb.Query(h, rogueDNS, "h9.partner.test", false, time.Second); err == nil {
		t.Errorf("a resolver no config names answered: %v", resp)
	}
	if resp, err := g.sb.Query(h, upstreamDNS, "h9.partner.test", true, time.Second); err == nil {
		t.Errorf("DNS over TCP to the upstream answered: %v", resp)
	}
	g.checkNeverReached(t, denied, "h9.partner.test")
}

// checkNeverReached fails for every name a sandbox resolver received.
func (g *gateway) checkNeverReached(t *testing.T, names ...string) {
	t.Helper()
	seen := map[string]sb.ResolverQuery{}
	for _, q := range g.sb.ResolverQueries() {
		seen[q.Name] = q
	}
	for _, n := range names {
		if q, ok := seen[strings.ToLower(dns.Fqdn(n))]; ok {
			t.Errorf("%s reached %s (tcp %v)", n, q.Server, q.TCP)
		}
	}
}

// interceptCounts scrapes edgeward_dns_intercepted_total, keyed
// "kind/result".
func (g *gateway) interceptCounts() map[string]uint64 {
	g.t.Helper()
	return g.labelledCounts("edgeward_dns_intercepted_total", "kind", "result")
}

// labelledCounts scrapes a counter with labels, keyed by their values
// joined with "/".
func (g *gateway) labelledCounts(name string, labels ...string) map[string]uint64 {
	g.t.Helper()
	text, err := g.sb.Curl(g.t.Context(), sb.Gateway, "http://127.0.0.1:9470/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		var values []string
		for _, l := range labels {
			values = append(values, labelValue(line, l))
		}
		var v float64
		fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
		out[strings.Join(values, "/")] = uint64(v)
	}
	return out
}

func labelValue(line, label string) string {
	_, rest, ok := strings.Cut(line, label+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func randomLabel() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestTransparentDNSFlood: a flood of queries far larger than the queue
// answers nothing it should not, counts what the full queue dropped, and
// the guard answers again as soon as the flood ends.
func TestTransparentDNSFlood(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true, QueueLength: 64})
	g.start()

	const total, bursts = 50000, 100 // in 10 s: a burst of 500 every 100 ms
	answered, wrong := g.flood(total, bursts, 100*time.Millisecond)
	if wrong != 0 {
		t.Errorf("%d answers for names off the list", wrong)
	}
	if answered == 0 || answered >= total/2 {
		t.Errorf("%d of %d allowed queries answered: want some, not all (the queue holds 64)", answered, total/2)
	}

	drops := g.labelledCounts("edgeward_dns_queue_dropped_total", "cause")
	if drops["queue_full"]+drops["receive_overrun"] == 0 {
		t.Errorf("a flood beyond the queue dropped nothing; counts %v", drops)
	}
	for _, q := range g.sb.ResolverQueries() {
		if strings.HasPrefix(q.Name, "x-") {
			t.Errorf("a name off the list reached %s: %s", q.Server, q.Name)
			break
		}
	}

	// Recovery: the next query after the flood is answered.
	if resp, err := g.sb.Query(sb.OT, upstreamDNS, "h3.partner.test", false, 2*time.Second); err != nil || sb.FirstA(resp) == "" {
		t.Errorf("after the flood: %v %v", resp, err)
	}
	t.Logf("flood of %d queries: %d allowed answered; dropped %v", total, answered, drops)
}

// flood sends total queries from the OT host to the upstream in bursts,
// half for allowed names and half for names off the list ("x-N.y.partner.
// test"), and counts the answers: to allowed names, and to any other.
func (g *gateway) flood(total, bursts int, gap time.Duration) (answered, wrong int) {
	g.t.Helper()
	var conn net.PacketConn
	err := g.sb.Do(sb.OT, func() error {
		var err error
		conn, err = net.ListenPacket("udp", ":0")
		return err
	})
	if err != nil {
		g.t.Fatal(err)
	}
	defer conn.Close()
	dst, _ := net.ResolveUDPAddr("udp", upstreamDNS)

	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil || len(m.Question) != 1 {
				continue
			}
			if strings.HasPrefix(m.Question[0].Name, "h") {
				answered++
			} else {
				wrong++
			}
		}
	}()

	per := total / bursts
	for b := range bursts {
		for i := range per {
			name := fmt.Sprintf("h%d.partner.test.", 1+(b*per+i)%250)
			if i%2 == 1 {
				name = fmt.Sprintf("x-%d.y.partner.test.", b*per+i)
			}
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			out, _ := m.Pack()
			conn.WriteTo(out, dst)
		}
		time.Sleep(gap)
	}
	<-done
	return answered, wrong
}

// TestTransparentDNSDaemonDown: with the daemon gone, DNS through the
// gateway stops; unload removes the rules.
func TestTransparentDNSDaemonDown(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.start()
	if _, err := g.sb.Query(sb.OT, upstreamDNS, "h11.partner.test", false, 3*time.Second); err != nil {
		t.Fatalf("with the daemon running: %v", err)
	}

	g.kill()
	if resp, err := g.sb.Query(sb.OT, upstreamDNS, "h12.partner.test", false, time.Second); err == nil {
		t.Errorf("with the daemon down, the OT host got an answer: %v", resp)
	}
	if resp, err := g.sb.Query(sb.Gateway, upstreamDNS, "h13.partner.test", false, time.Second); err == nil {
		t.Errorf("with the daemon down, a process on the gateway got an answer: %v", resp)
	}
	g.checkNeverReached(t, "h12.partner.test", "h13.partner.test")

	if out, err := g.cli("unload", "-c", g.cfgPath); err != nil || !strings.Contains(out, "removed the transparent DNS rules") {
		t.Fatalf("unload: %v\n%s", err, out)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		out, err := g.sbOutput(sb.Gateway, cmd, "-S")
		if err != nil || strings.Contains(out, "EDGEWARD") {
			t.Errorf("%s after unload: %v\n%s", cmd, err, out)
		}
	}
}

// TestTransparentDNSReload: a reload turns transparent mode off (the rules
// go, DNS is forwarded unjudged as before) and on again (the rules and the
// queue are back).
func TestTransparentDNSReload(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Transparent: true})
	g.start()
	if resp, err := g.sb.Query(sb.OT, rogueDNS, "h20.partner.test", false, time.Second); err == nil {
		t.Fatalf("transparent mode on: the rogue resolver answered: %v", resp)
	}

	rewritePolicy(t, g, demopolicy.Params{})
	if out, err := g.cli("reload", "-c", g.cfgPath); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if out, _ := g.sbOutput(sb.Gateway, "iptables", "-S"); strings.Contains(out, "EDGEWARD") {
		t.Errorf("transparent mode off, the rules stayed:\n%s", out)
	}
	if _, err := g.sb.Query(sb.OT, rogueDNS, "h21.partner.test", false, 2*time.Second); err != nil {
		t.Errorf("transparent mode off: DNS through the tunnel is not intercepted, yet: %v", err)
	}

	rewritePolicy(t, g, demopolicy.Params{Transparent: true})
	if out, err := g.cli("reload", "-c", g.cfgPath); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if resp, err := g.sb.Query(sb.OT, rogueDNS, "h22.partner.test", false, time.Second); err == nil {
		t.Errorf("transparent mode on again: the rogue resolver answered: %v", resp)
	}
	if _, err := g.sb.Query(sb.OT, upstreamDNS, "h23.partner.test", false, 2*time.Second); err != nil {
		t.Errorf("transparent mode on again: an allowed name: %v", err)
	}
	g.checkNeverReached(t, "h20.partner.test", "h22.partner.test")

	// Without a dns section there is no guard, and no rules may be left
	// to queue DNS for a reader that is gone.
	rewritePolicy(t, g, demopolicy.Params{WithoutDNS: true})
	if out, err := g.cli("reload", "-c", g.cfgPath); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if out, _ := g.sbOutput(sb.Gateway, "iptables", "-S"); strings.Contains(out, "EDGEWARD") {
		t.Errorf("without a dns section, the rules stayed:\n%s", out)
	}
}
