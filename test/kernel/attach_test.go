package kernel

import (
	"fmt"
	"net/netip"
	"path"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/testenv"
	"github.com/edgeward/edgeward/loader"
)

// TestAttachConnections attaches Edgeward to a gateway namespace with an
// uplink and a LAN, and checks one allowed and one denied TCP connection
// per hook and address family: once with the tc programs attached as the
// loader chooses (tcx from Linux 6.6, the clsact fallback before) and once
// with clsact forced.
func TestAttachConnections(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		force bool
	}{
		{"loader-choice", false},
		{"clsact-forced", true},
	} {
		t.Run(tc.name, func(t *testing.T) { testAttach(t, tc.force) })
	}
}

func testAttach(t *testing.T, forceClsact bool) {
	topo := newTopology(t)
	srv := startServers(t, topo)
	ld := openLoader(t, topo.gateway, forceClsact, policyFor(srv))
	attachAll(t, ld, topo, forceClsact)

	checks := srv.checks(topo)
	warmUp(t, checks)
	t.Run("connections", func(t *testing.T) {
		for _, c := range checks {
			t.Run(c.name(), func(t *testing.T) {
				t.Parallel() // the denied ones wait for their timeout
				if c.allowed {
					expectGreeting(t, c.from, c.to)
				} else {
					expectDropped(t, c.from, c.to)
				}
			})
		}
	})
	expectCounted(t, ld, checks)
}

// warmUp makes the allowed connections once, one after the other, before
// the checks run in parallel. The first TCP connections of a fresh kernel
// run DO_ONCE code (the secrets of port selection and of the connection
// hash) that then patches itself out with int3-based text poking; under
// qemu's TCG, a second CPU connecting at that moment has hit an int3 oops
// in secure_ipv4_port_ephemeral (Debian's 6.12), which kills the guest.
func warmUp(t *testing.T, checks []check) {
	t.Helper()
	for _, c := range checks {
		if c.allowed {
			expectGreeting(t, c.from, c.to)
		}
	}
}

// Addresses of the test networks: RFC 2544's benchmarking range and IPv6's
// documentation prefix, living only in the test's namespaces.
var (
	wanGateway = prefixes("198.18.90.1/24", "2001:db8:90::1/64")
	wanUplink  = prefixes("198.18.90.2/24", "2001:db8:90::2/64")
	lanGateway = prefixes("198.18.91.1/24", "2001:db8:91::1/64")
	lanHost    = prefixes("198.18.91.2/24", "2001:db8:91::2/64")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// topology is a gateway between an uplink side and an OT host:
//
//	OT host ──ewk-lh/ewk-lan── gateway ──ewk-wan/ewk-up── uplink side
type topology struct {
	gateway, uplink, lanHost netns.NsHandle
	wan, lan                 netlink.Link // in gateway
}

func newTopology(t *testing.T) *topology {
	t.Helper()
	topo := &topology{
		gateway: newNamespace(t),
		uplink:  newNamespace(t),
		lanHost: newNamespace(t),
	}
	topo.wan = vethPair(t, topo.gateway, "ewk-wan", wanGateway, topo.uplink, "ewk-up", wanUplink)
	topo.lan = vethPair(t, topo.gateway, "ewk-lan", lanGateway, topo.lanHost, "ewk-lh", lanHost)
	return topo
}

// servers are the listeners of one address family: on the uplink side one
// the policy allows and one it does not; on the gateway a LAN service, a
// port that is no service, and a port the uplink side tries to reach.
type servers struct {
	family                     string
	outAllowed, outDenied      netip.AddrPort // uplink side
	serviceAllowed, serviceNot netip.AddrPort // gateway, LAN address
	inbound                    netip.AddrPort // gateway, uplink address
}

// serverSet holds the servers of every family.
type serverSet []servers

func startServers(t *testing.T, topo *topology) serverSet {
	t.Helper()
	var out serverSet
	for i, up := range wanUplink {
		family := "ipv4"
		if up.Addr().Is6() {
			family = "ipv6"
		}
		out = append(out, servers{
			family:         family,
			outAllowed:     serve(t, topo.uplink, up.Addr()),
			outDenied:      serve(t, topo.uplink, up.Addr()),
			serviceAllowed: serve(t, topo.gateway, lanGateway[i].Addr()),
			serviceNot:     serve(t, topo.gateway, lanGateway[i].Addr()),
			inbound:        serve(t, topo.gateway, wanGateway[i].Addr()),
		})
	}
	return out
}

// policyFor allows TCP to every outAllowed server and offers every
// serviceAllowed port to LAN hosts.
func policyFor(set serverSet) *config.Config {
	cfg := &config.Config{Mode: config.ModeEnforce}
	ep := config.Endpoint{Name: "kernel-matrix"}
	for _, s := range set {
		addr := s.outAllowed.Addr()
		ep.To = append(ep.To, netip.PrefixFrom(addr, addr.BitLen()))
		ep.Ports = append(ep.Ports, tcpPort(s.outAllowed.Port()))
		cfg.Interfaces.LANServices = append(cfg.Interfaces.LANServices, tcpPort(s.serviceAllowed.Port()))
	}
	cfg.Endpoints = []config.Endpoint{ep}
	return cfg
}

func tcpPort(p uint16) config.PortRange {
	return config.PortRange{Proto: config.ProtoTCP, First: p, Last: p}
}

// check is one connection attempt and how the hook that judges its first
// packet must count it.
type check struct {
	hook    string // as named in bpf/reasons.h
	family  string
	allowed bool
	reason  string // the counter the hook must have raised
	from    netns.NsHandle
	to      netip.AddrPort
}

func (c check) name() string {
	verdict := "denied"
	if c.allowed {
		verdict = "allowed"
	}
	return fmt.Sprintf("%s/%s/%s", c.hook, c.family, verdict)
}

func (c check) verdict() loader.Verdict {
	if c.allowed {
		return loader.VerdictPass
	}
	return loader.VerdictDrop
}

// checks lists an allowed and a denied connection per hook and family. The
// uplink ingress hook allows the replies of a connection egress allowed and
// drops a connection the uplink side opens.
func (set serverSet) checks(topo *topology) []check {
	var out []check
	for _, s := range set {
		out = append(out,
			check{"tc_egress", s.family, true, "endpoint", topo.gateway, s.outAllowed},
			check{"tc_egress", s.family, false, "no_rule", topo.gateway, s.outDenied},
			check{"uplink_ingress", s.family, true, "flow", topo.gateway, s.outAllowed},
			check{"uplink_ingress", s.family, false, "unsolicited", topo.uplink, s.inbound},
			check{"xdp_lan", s.family, true, "service", topo.lanHost, s.serviceAllowed},
			check{"xdp_lan", s.family, false, "not_a_service", topo.lanHost, s.serviceNot},
		)
	}
	return out
}

// openLoader loads the programs with pins on a private bpffs and applies
// cfg. When the test ends it removes everything from the gateway namespace.
func openLoader(t *testing.T, gateway netns.NsHandle, forceClsact bool, cfg *config.Config) *loader.Loader {
	t.Helper()
	pins := testenv.BPFFS(t) + "/edgeward"
	ld, err := loader.Open(loader.Options{PinPath: pins, ForceClsact: forceClsact})
	if err != nil {
		t.Fatalf("open loader: %v", err)
	}
	t.Cleanup(func() {
		ld.Close()
		inNamespace(t, gateway, func() {
			if err := loader.Unload(pins); err != nil {
				t.Errorf("unload: %v", err)
			}
		})
	})

	policy, err := loader.Compile(cfg, 1)
	if err != nil {
		t.Fatalf("compile policy: %v", err)
	}
	if err := ld.ApplyPolicy(policy); err != nil {
		t.Fatalf("apply policy: %v", err)
	}
	return ld
}

// attachAll attaches the uplink and LAN programs in the gateway namespace
// and checks that the egress program went where this kernel allows.
func attachAll(t *testing.T, ld *loader.Loader, topo *topology, forceClsact bool) {
	t.Helper()
	wantEgress, err := wantTCMode(forceClsact)
	if err != nil {
		t.Fatal(err)
	}

	for _, a := range []struct {
		dev  netlink.Link
		role loader.Role
	}{{topo.wan, loader.RoleUplink}, {topo.lan, loader.RoleLAN}} {
		iface := loader.Interface{Index: a.dev.Attrs().Index, Name: a.dev.Attrs().Name}
		var attached []loader.Attached
		inNamespace(t, topo.gateway, func() { attached, err = ld.Attach(iface, a.role) })
		if err != nil {
			t.Fatalf("attach to %s: %v", iface.Name, err)
		}
		for _, at := range attached {
			t.Logf("attach mode: %s %s %s %s", path.Base(t.Name()), iface.Name, at.Hook, at.Mode)
			if at.Hook == loader.HookTCEgress && at.Mode != wantEgress {
				t.Fatalf("%s attached with %s, want %s on Linux %s", at.Hook, at.Mode, wantEgress, kernelRelease())
			}
		}
	}
}

// expectCounted checks that every hook counted its checks under the
// expected verdict and reason.
func expectCounted(t *testing.T, ld *loader.Loader, checks []check) {
	t.Helper()
	counters, err := ld.Maps().Counters()
	if err != nil {
		t.Fatalf("read counters: %v", err)
	}

	for _, c := range checks {
		if packets := countOf(counters, c); packets == 0 {
			t.Errorf("%s: no packet counted as %s/%s; counters: %v", c.name(), c.verdict(), c.reason, counters)
		}
	}
}

// countOf sums the packets counted for c's hook, verdict and reason.
func countOf(counters []loader.Counter, c check) uint64 {
	var n uint64
	for _, k := range counters {
		if k.Hook.String() == c.hook && k.Verdict == c.verdict() && k.Reason.String() == c.reason {
			n += k.Packets
		}
	}
	return n
}

// wantTCMode is how the loader must attach tc programs on this kernel: tcx
// arrived in Linux 6.6, and before it the loader must fall back to clsact
// by itself.
func wantTCMode(forceClsact bool) (loader.AttachMode, error) {
	if forceClsact {
		return loader.ModeClsact, nil
	}
	var major, minor int
	if _, err := fmt.Sscanf(kernelRelease(), "%d.%d", &major, &minor); err != nil {
		return "", fmt.Errorf("parse kernel release %q: %w", kernelRelease(), err)
	}
	if major > 6 || major == 6 && minor >= 6 {
		return loader.ModeTCX, nil
	}
	return loader.ModeClsact, nil
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
