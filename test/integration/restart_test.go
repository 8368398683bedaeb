package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// probeHost is an extra address on the uplink side that the restart and
// reload tests send their probes to.
const (
	probeAddr = "198.18.7.7"
	probePort = 5354
)

// loadProbe sends n allowed datagrams (to probeAddr, which the policy must
// allow) and n disallowed ones (to the internet host) from the gateway, one
// of each every 2 ms, while during runs; it returns what arrived of each.
func (g *gateway) loadProbe(n int, during func()) (allowed, denied int) {
	g.t.Helper()
	allow := g.countUDP(sb.WAN, sb.Addr(probeAddr, probePort))
	deny := g.countUDP(sb.WAN, sb.Addr(sb.InternetHost4, probePort))
	defer allow.close()
	defer deny.close()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.sendUDP(sb.Gateway, []string{sb.Addr(probeAddr, probePort), sb.Addr(sb.InternetHost4, probePort)}, n, 2*time.Millisecond)
	}()
	during()
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	return allow.count(), deny.count()
}

func addProbeHost(g *gateway) {
	g.ipIn(sb.WAN, "addr", "add", probeAddr+"/32", "dev", "lo")
}

// TestRestartWithoutGap: while a probe sends allowed and disallowed
// traffic, and a process in the guarded cgroup tries PACKET_QDISC_BYPASS
// every millisecond, the daemon is killed with SIGKILL and started again
// five times. No disallowed packet arrives, no allowed one is lost, the
// option is never allowed, and neither the uplink nor the cgroup ever
// carries a second program.
func TestRestartWithoutGap(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Extra: []demopolicy.Endpoint{
		{Name: "probe", To: []string{probeAddr + "/32"}, Ports: []string{fmt.Sprintf("udp/%d", probePort)}},
	}})
	addProbeHost(g)
	g.start()

	const n = 2000
	stopBypass := make(chan struct{})
	type attempts struct {
		allowed, refused int
		err              error
	}
	bypass := make(chan attempts, 1)
	go func() {
		a, r, err := g.bypassAttempts(stopBypass)
		bypass <- attempts{a, r, err}
	}()
	allowed, denied := g.loadProbe(n, func() {
		defer close(stopBypass)
		for i := range 5 {
			time.Sleep(300 * time.Millisecond)
			g.kill()
			g.start()
			if got := tcxEgressPrograms(t, g, sb.GatewayWANIface); got != 1 {
				t.Errorf("after restart %d: wan0 carries %d tcx egress programs, want 1", i+1, got)
			}
			if got := len(g.attachments()); got != 3 {
				t.Errorf("after restart %d: %d attachments, want 3 (wan0 egress and ingress, lan0)", i+1, got)
			}
			if got := g.guardPrograms(); got != 1 {
				t.Errorf("after restart %d: the cgroup carries %d setsockopt programs, want 1", i+1, got)
			}
			if log := g.daemon.Tail(50); !strings.Contains(log, "hook=xdp_lan attach=xdp-native") {
				t.Errorf("after restart %d: the adopted XDP link's mode is not logged:\n%s", i+1, log)
			}
		}
	})

	if denied != 0 {
		t.Errorf("%d disallowed datagrams arrived during the restarts, want 0", denied)
	}
	if allowed < n {
		t.Errorf("%d of %d allowed datagrams arrived during the restarts", allowed, n)
	}
	t.Logf("allowed %d/%d, disallowed %d/%d across 5 kill -9 and restarts", allowed, n, denied, n)
	b := <-bypass
	if b.err != nil {
		t.Fatal(b.err)
	}
	if b.allowed != 0 || b.refused == 0 {
		t.Errorf("PACKET_QDISC_BYPASS in the guarded cgroup during the restarts: allowed %d times, refused %d; want never allowed", b.allowed, b.refused)
	}
	t.Logf("PACKET_QDISC_BYPASS refused %d times across the restarts", b.refused)
}

// TestReloadIsAtomic: 20 reloads alternate two policies while a probe
// sends. Both allow the probe, through prefixes of different lengths: a
// packet judged by the prefix lengths of one policy and the entries of the
// other would find no entry and be dropped, so a single lost allowed
// datagram would show a mix. A rejected reload keeps the policy.
func TestReloadIsAtomic(t *testing.T) {
	policy := func(to string) demopolicy.Params {
		return demopolicy.Params{Extra: []demopolicy.Endpoint{
			{Name: "probe", To: []string{to}, Ports: []string{fmt.Sprintf("udp/%d", probePort)}},
		}}
	}
	a, b := policy(probeAddr+"/32"), policy("198.18.7.0/24")
	g := newGateway(t, a)
	addProbeHost(g)
	g.start()

	const n = 2000
	allowed, denied := g.loadProbe(n, func() {
		for i := range 20 {
			p := a
			if i%2 == 0 {
				p = b
			}
			rewritePolicy(t, g, p)
			if out, err := g.cli("reload", "-c", g.cfgPath); err != nil {
				t.Errorf("reload %d: %v\n%s", i+1, err, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if denied != 0 || allowed < n {
		t.Errorf("during 20 reloads: %d/%d allowed and %d/%d disallowed datagrams arrived; want all and none", allowed, n, denied, n)
	}

	// An invalid file is rejected and the policy stays: edgeward reload
	// refuses to send it, a SIGHUP makes the daemon refuse it.
	writeFile(t, g.cfgPath, "mode: enforce\nendpoints: [{name: x}]\n")
	out, err := g.cli("reload", "-c", g.cfgPath)
	if exitCode(err) != 2 || !strings.Contains(out, "endpoints[0]") {
		t.Errorf("edgeward reload of an invalid file: %v\n%s", err, out)
	}
	if err := g.daemon.Signal(sighup); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	allowed, denied = g.loadProbe(50, func() {})
	if allowed != 50 || denied != 0 {
		t.Errorf("after a rejected reload: %d/50 allowed, %d/50 disallowed arrived", allowed, denied)
	}
	metrics, err := g.sb.Curl(t.Context(), sb.Gateway, "http://127.0.0.1:9470/metrics")
	if err != nil || !strings.Contains(metrics, "edgeward_config_last_reload_failed 1") {
		t.Errorf("edgeward_config_last_reload_failed is not 1 after a rejected reload (%v)", err)
	}
}

// TestAuditThenEnforce: audit mode drops nothing and counts what it would
// drop; switching to enforce cuts the disallowed connection and keeps the
// allowed one.
func TestAuditThenEnforce(t *testing.T) {
	extra := []demopolicy.Endpoint{{Name: "echo", To: []string{sb.EndpointHost4 + "/32"}, Ports: []string{"tcp/8443"}}}
	g := newGateway(t, demopolicy.Params{Mode: config.ModeAudit, Extra: extra})
	g.sb.ListenTCPEcho(sb.WAN, sb.Addr(sb.InternetHost4, 8443))
	g.start()

	allowed, err := g.dialTCP(sb.OT, sb.Addr(sb.EndpointHost4, 8443), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer allowed.Close()
	denied, err := g.dialTCP(sb.OT, sb.Addr(sb.InternetHost4, 8443), 5*time.Second)
	if err != nil {
		t.Fatalf("audit mode dropped a connection: %v", err)
	}
	defer denied.Close()
	roundTrip(t, allowed, "allowed, audit", true)
	roundTrip(t, denied, "disallowed, audit", true)
	if c := g.counters(); c["xdp_lan/audit/no_rule"] == 0 {
		t.Errorf("audit mode counted nothing under xdp_lan/audit/no_rule: %v", c)
	}

	rewritePolicy(t, g, demopolicy.Params{Mode: config.ModeEnforce, Extra: extra})
	if out, err := g.cli("reload", "-c", g.cfgPath); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	roundTrip(t, allowed, "allowed, after switching to enforce", true)
	roundTrip(t, denied, "disallowed, after switching to enforce", false)
}

// roundTrip writes a line on an echo connection and expects it back, or
// expects nothing back.
func roundTrip(t *testing.T, conn interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
	SetDeadline(time.Time) error
}, what string, want bool) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	_, err := conn.Write([]byte("ping\n"))
	buf := make([]byte, 5)
	if err == nil {
		_, err = conn.Read(buf)
	}
	if got := err == nil; got != want {
		t.Errorf("%s: echo worked=%v, want %v (%v)", what, got, want, err)
	}
}
