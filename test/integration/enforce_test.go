package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// demoProbes are the connections of the demo, from host: what the demo
// policy lets leave the uplink and what it does not.
func demoProbes(from sb.Host) []probe {
	at := func(name string) string { return fmt.Sprintf("%s from %s", name, from) }
	return []probe{
		{at("endpoint tcp/443 v4"), from, "https", httpsURL(sb.EndpointHost4), true},
		{at("endpoint tcp/443 v6"), from, "https", httpsURL(sb.EndpointHost6), true},
		{at("endpoint unlisted port v4"), from, "tcp-echo", hostPort(sb.EndpointHost4, sb.UnlistedPort), false},
		{at("endpoint unlisted port v6"), from, "tcp-echo", hostPort(sb.EndpointHost6, sb.UnlistedPort), false},
		{at("endpoint udp/5353 v4"), from, "udp-echo", hostPort(sb.EndpointHost4, sb.UDPEchoPort), true},
		{at("internet host v4"), from, "https", httpsURL(sb.InternetHost4), false},
		{at("internet host v6"), from, "https", httpsURL(sb.InternetHost6), false},
		{at("udp probe to unlisted address v4"), from, "udp-echo", hostPort(sb.InternetHost4, sb.UDPEchoPort), false},
		{at("udp probe to unlisted address v6"), from, "udp-echo", hostPort(sb.InternetHost6, sb.UDPEchoPort), false},
		{at("internet host through the proxy"), from, "https-proxy", httpsURL(sb.InternetHost4), true},
		{at("vpc endpoint through the tunnel v4"), from, "https", httpsURL(sb.VPCEndpoint4), true},
		{at("vpc endpoint through the tunnel v6"), from, "https", httpsURL(sb.VPCEndpoint6), true},
		{at("vpc mqtt port through the tunnel"), from, "tcp-echo", hostPort(sb.VPCEndpoint4, sb.MQTTSPort), true},
	}
}

// TestEnforceDemoPolicy: from the gateway itself and from the OT host
// through it, only the endpoints, the proxy and the tunnel are reachable,
// IPv4 and IPv6 alike, and the drops are counted under their reason.
func TestEnforceDemoPolicy(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()

	before := g.counters()
	g.expect(demoProbes(sb.Gateway))
	g.expect(demoProbes(sb.OT))
	after := g.counters()

	for _, key := range []string{"tc_egress/drop/no_rule", "tc_egress/pass/endpoint", "tc_egress/pass/proxy"} {
		if after[key] <= before[key] {
			t.Errorf("counter %s did not grow: %d -> %d", key, before[key], after[key])
		}
	}
}

// TestTunnelTransportNeedsEndpoint: the tunnel's UDP transport leaves only
// because the vpn-peer endpoint allows it; without it the VPC is cut off,
// and a reload that adds it back restores the tunnel.
func TestTunnelTransportNeedsEndpoint(t *testing.T) {
	g := newGateway(t, demopolicy.Params{WithoutVPNPeer: true})
	g.start()

	vpc := probe{"vpc endpoint without vpn-peer", sb.OT, "https", httpsURL(sb.VPCEndpoint4), false}
	g.expect([]probe{vpc})

	// Add the endpoint back and reload in place.
	rewritePolicy(t, g, demopolicy.Params{})
	if err := g.daemon.Signal(sighup); err != nil {
		t.Fatal(err)
	}
	vpc.name, vpc.allow = "vpc endpoint after reload with vpn-peer", true
	waitFor(t, 10*time.Second, func() error { return g.try(vpc) })
}

// TestNewInterfaceEnforced: an interface created in the gateway after the
// daemon started is enforced within one second, Ethernet or layer 3.
func TestNewInterfaceEnforced(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()

	run(t, "ip", "-n", g.sb.NetNS(sb.Gateway), "link", "add", "up1", "type", "veth", "peer", "name", "eth9", "netns", g.sb.NetNS(sb.WAN))
	run(t, "ip", "-n", g.sb.NetNS(sb.Gateway), "addr", "add", "100.64.9.1/30", "dev", "up1")
	run(t, "ip", "-n", g.sb.NetNS(sb.Gateway), "link", "set", "up1", "up")
	took := g.waitAttached("up1", time.Second)
	t.Logf("veth enforced %s after creation", took)

	run(t, "ip", "-n", g.sb.NetNS(sb.WAN), "addr", "add", "100.64.9.2/30", "dev", "eth9")
	run(t, "ip", "-n", g.sb.NetNS(sb.WAN), "link", "set", "eth9", "up")
	if err := g.sb.ListenUDPEcho(sb.WAN, "100.64.9.2:5353"); err != nil {
		t.Fatal(err)
	}
	g.expect([]probe{{"udp out of the new veth", sb.Gateway, "udp-echo", "100.64.9.2:5353", false}})

	run(t, "ip", "-n", g.sb.NetNS(sb.Gateway), "tuntap", "add", "dev", "lte0", "mode", "tun")
	took = g.waitAttached("lte0", time.Second)
	t.Logf("layer-3 tun device enforced %s after creation", took)
}

// TestKillKeepsPolicyAndUnloadRemovesAll: SIGKILL of the daemon leaves the
// policy enforcing; a restart adopts the pinned links (interfaces and the
// socket guard's cgroup) instead of adding second ones; unload removes
// every trace.
func TestKillKeepsPolicyAndUnloadRemovesAll(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()
	g.kill()

	g.expect([]probe{
		{"internet host after kill -9", sb.OT, "https", httpsURL(sb.InternetHost4), false},
		{"endpoint after kill -9", sb.OT, "https", httpsURL(sb.EndpointHost4), true},
	})

	g.start()
	assertOneAttachment(t, g, sb.GatewayWANIface)
	if n := g.guardPrograms(); n != 1 {
		t.Errorf("after kill -9 and restart the cgroup carries %d setsockopt programs, want 1", n)
	}

	// Unload with the daemon running stops it too.
	out, err := g.cli("unload", "-c", g.cfgPath)
	if err != nil {
		t.Fatalf("unload: %v\n%s", err, out)
	}
	if err := g.daemon.Wait(5 * time.Second); !g.daemon.Exited() {
		t.Errorf("daemon still running after unload (%v):\n%s", err, out)
	}
	if !strings.Contains(out, "detached the socket guard (setsockopt) from cgroup "+g.sb.Cgroup) {
		t.Errorf("unload does not say it detached the socket guard:\n%s", out)
	}
	assertNothingLeft(t, g)
	g.expect([]probe{{"internet host after unload", sb.OT, "https", httpsURL(sb.InternetHost4), true}})
}

// TestClsactFallback: where tcx is missing (forced here) the program is
// attached through a clsact qdisc, enforces the same, and unload removes
// the filter and the qdisc.
func TestClsactFallback(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start("-force-clsact")

	for _, a := range g.attachments() {
		if a.Hook == loader.HookTCEgress && a.Mode != loader.ModeClsact {
			t.Errorf("%s: %s attached with %s, want clsact", a.Name, a.Hook, a.Mode)
		}
	}
	g.expect([]probe{
		{"internet host under clsact", sb.OT, "https", httpsURL(sb.InternetHost4), false},
		{"endpoint under clsact", sb.OT, "https", httpsURL(sb.EndpointHost4), true},
	})

	g.kill()
	g.start("-force-clsact")
	filters := run(t, "tc", "-n", g.sb.NetNS(sb.Gateway), "filter", "show", "dev", sb.GatewayWANIface, "egress")
	if n := strings.Count(filters, "edgeward_tc_egress"); n != 1 {
		t.Errorf("%d edgeward filters on %s after a restart, want 1:\n%s", n, sb.GatewayWANIface, filters)
	}

	// Back to tcx: the clsact filter goes, one program judges.
	g.kill()
	g.start()
	filters = run(t, "tc", "-n", g.sb.NetNS(sb.Gateway), "filter", "show", "dev", sb.GatewayWANIface, "egress")
	if strings.Contains(filters, "edgeward") || tcxEgressPrograms(t, g, sb.GatewayWANIface) != 1 {
		t.Errorf("after switching back to tcx: want one tcx program and no filter; filters:\n%s", filters)
	}

	g.daemon.Stop()
	if out, err := g.cli("unload", "-c", g.cfgPath); err != nil {
		t.Fatalf("unload: %v\n%s", err, out)
	}
	assertNothingLeft(t, g)
}

// TestStatusAndMetrics: status reads the kernel and names mode, uplink,
// hook and counters; the metrics endpoint serves the kernel counters.
func TestStatusAndMetrics(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()
	g.expect([]probe{{"internet host", sb.Gateway, "https", httpsURL(sb.InternetHost4), false}})

	out, err := g.cli("status", "-c", g.cfgPath)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if err := contains(out, "mode:       enforce", "wan0", "uplink", "tc_egress", "tcx", "lan0", "lan", "no_rule"); err != nil {
		t.Errorf("status: %v:\n%s", err, out)
	}

	metrics, err := g.sb.Curl(t.Context(), sb.Gateway, "http://127.0.0.1:9470/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, series := range []string{
		`edgeward_packets_total{hook="tc_egress",reason="no_rule",verdict="drop"}`,
		`edgeward_bytes_total{hook="tc_egress",reason="no_rule",verdict="drop"}`,
	} {
		if v := sampleValue(metrics, series); v <= 0 {
			t.Errorf("metrics: %s is %v, want the drop counted", series, v)
		}
	}
	if err := contains(metrics,
		`edgeward_policy_entries 5`,
		`edgeward_policy_capacity 262144`,
		`edgeward_interfaces{enforced="true",role="uplink"} 1`,
		`edgeward_build_info{`,
	); err != nil {
		t.Errorf("metrics: %v", err)
	}

	out, err = g.cli("status", "-c", g.cfgPath, "-json")
	if err != nil {
		t.Fatalf("status -json: %v\n%s", err, out)
	}
	var st struct {
		Loaded     bool
		Mode       string
		Interfaces []struct {
			Name, Role string
			Hooks      []struct{ Hook, Attach string }
		}
		Counters []struct {
			Hook, Verdict, Reason string
			Packets               uint64
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -json is not JSON: %v\n%s", err, out)
	}
	if !st.Loaded || st.Mode != "enforce" {
		t.Errorf("status -json: loaded %v mode %q", st.Loaded, st.Mode)
	}
	for _, i := range st.Interfaces {
		if i.Name == sb.GatewayWANIface && (i.Role != "uplink" || len(i.Hooks) != 2) {
			t.Errorf("status -json: wan0 %+v, want an uplink with two hooks", i)
		}
	}

	// Status keeps working with the daemon gone: it reads the pins, and
	// exits with 3 to say the daemon part is missing.
	g.kill()
	if out, err := g.cli("status", "-c", g.cfgPath); exitCode(err) != 3 || !strings.Contains(out, "wan0") {
		t.Errorf("status without daemon: %v, want exit status 3\n%s", err, out)
	}
}

// tcxEgressPrograms asks the kernel (BPF_PROG_QUERY) how many tcx egress
// programs iface in the gateway carries.
func tcxEgressPrograms(t *testing.T, g *gateway, iface string) int {
	t.Helper()
	var n int
	err := g.sb.Do(sb.Gateway, func() error {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: ebpf.AttachTCXEgress})
		if err != nil {
			return err
		}
		n = len(res.Programs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func assertOneAttachment(t *testing.T, g *gateway, iface string) {
	t.Helper()
	if n := tcxEgressPrograms(t, g, iface); n != 1 {
		t.Errorf("%s carries %d tcx egress programs, want 1", iface, n)
	}
}

// assertNothingLeft checks that no program of ours is attached in the
// gateway or to the sandbox's cgroup and nothing is pinned.
func assertNothingLeft(t *testing.T, g *gateway) {
	t.Helper()
	if a := g.attachments(); len(a) > 0 {
		t.Errorf("attachments left after unload: %+v", a)
	}
	if n := g.guardPrograms(); n > 0 {
		t.Errorf("the sandbox's cgroup still carries %d setsockopt programs", n)
	}
	if n := tcxEgressPrograms(t, g, sb.GatewayWANIface); n > 0 {
		t.Errorf("%s still carries %d tcx egress programs", sb.GatewayWANIface, n)
	}
	out := run(t, "ip", "netns", "exec", g.sb.NetNS(sb.Gateway), "tc", "filter", "show", "dev", sb.GatewayWANIface, "egress")
	if strings.Contains(out, "edgeward") {
		t.Errorf("tc still lists our filter:\n%s", out)
	}
	if entries, err := readDirIfExists(g.cfg.Paths.BPFFS); err != nil || len(entries) > 0 {
		t.Errorf("pins left under %s: %v %v", g.cfg.Paths.BPFFS, entries, err)
	}
}

// run runs a command and fails the test when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitFor retries fn until it succeeds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("still failing after %s: %v", timeout, err)
}
