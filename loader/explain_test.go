package loader

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// TestExplain: the explain twin decides as the enforcing program does,
// names the rule, and leaves every map real traffic uses as it was.
func TestExplain(t *testing.T) {
	l := openTestLoader(t, learningPolicy())
	openFlows(t, l)
	learnOne(t, l, inet6, 8883)

	ap := netip.AddrPortFrom
	for _, tc := range []struct {
		name     string
		probe    Probe
		verdict  Verdict
		reason   string
		endpoint uint16
		flow     string
	}{
		{"endpoint", Probe{Hook: HookTCEgress, Proto: pkt.ProtoTCP, Src: ap(gw4, 41000), Dst: ap(s3v4, 443), TCPFlags: pkt.TCPSyn}, VerdictPass, "endpoint", 1, ""},
		{"endpoint ipv6", Probe{Hook: HookTCEgress, Proto: pkt.ProtoTCP, Src: ap(gw6, 41000), Dst: ap(s3v6, 443), TCPFlags: pkt.TCPSyn}, VerdictPass, "endpoint", 1, ""},
		{"endpoint, l3 device", Probe{Hook: HookTCEgress, L3: true, Proto: pkt.ProtoUDP, Src: ap(gw4, 51820), Dst: ap(vpnPeer4, 51820)}, VerdictPass, "endpoint", 0, ""},
		{"proxy", Probe{Hook: HookTCEgress, Proto: pkt.ProtoTCP, Src: ap(gw4, 41000), Dst: ap(proxy4, 3128), TCPFlags: pkt.TCPSyn}, VerdictPass, "proxy", EndpointProxy, ""},
		{"endpoint, other port", Probe{Hook: HookTCEgress, Proto: pkt.ProtoTCP, Src: ap(gw4, 41000), Dst: ap(s3v4, 8443), TCPFlags: pkt.TCPSyn}, VerdictDrop, "no_rule", 0, ""},
		{"icmp", Probe{Hook: HookTCEgress, Proto: pkt.ProtoICMP, Src: ap(gw4, 0), Dst: ap(s3v4, 0)}, VerdictDrop, "no_rule", 0, ""},
		{"learned", Probe{Hook: HookTCEgress, Proto: pkt.ProtoTCP, Src: ap(gw6, 41000), Dst: ap(inet6, 8883), TCPFlags: pkt.TCPSyn}, VerdictPass, "learned", 7, ""},
		{"reply of a flow", Probe{Hook: HookUplinkIngress, Proto: pkt.ProtoTCP, Src: ap(s3v4, 443), Dst: ap(gw4, 40000), TCPFlags: pkt.TCPAck}, VerdictPass, "flow", 0, "new"},
		{"unsolicited", Probe{Hook: HookUplinkIngress, Proto: pkt.ProtoTCP, Src: ap(inet4, 443), Dst: ap(gw4, 40000), TCPFlags: pkt.TCPAck}, VerdictDrop, "unsolicited", 0, ""},
		{"reply on an l3 device", Probe{Hook: HookUplinkIngress, L3: true, Proto: pkt.ProtoTCP, Src: ap(s3v6, 443), Dst: ap(gw6, 40000), TCPFlags: pkt.TCPAck}, VerdictPass, "flow", 0, "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, l)
			x, err := Explain(l.pins.root, tc.probe)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, snapshot(t, l)); diff != "" {
				t.Errorf("explain changed the maps (-before +after):\n%s", diff)
			}

			if !x.SameAsLoaded {
				t.Errorf("the twin of %s differs from the loaded program", x.Program)
			}
			if x.Verdict != tc.verdict || x.Reason.String() != tc.reason || x.Hook != tc.probe.Hook || x.Generation != 1 {
				t.Errorf("explained %s %s %s generation %d, want %s %s %s generation 1",
					x.Hook, x.Verdict, x.Reason, x.Generation, tc.probe.Hook, tc.verdict, tc.reason)
			}
			if x.Reason.Allows() && x.Reason.String() != "flow" && x.Endpoint != tc.endpoint {
				t.Errorf("endpoint %d, want %d", x.Endpoint, tc.endpoint)
			}
			if got := flowState(x.Flow); got != tc.flow {
				t.Errorf("flow %q, want %q", got, tc.flow)
			}
		})
	}
}

// TestExplainLearnedEntry: a probe to a learned address reports the entry
// with its remaining lifetime.
func TestExplainLearnedEntry(t *testing.T) {
	l := openTestLoader(t, learningPolicy())
	learnOne(t, l, inet4, 8883)

	x, err := Explain(l.pins.root, Probe{Hook: HookTCEgress, Proto: pkt.ProtoTCP,
		Src: netip.AddrPortFrom(gw4, 41000), Dst: netip.AddrPortFrom(inet4, 8883), TCPFlags: pkt.TCPSyn})
	if err != nil {
		t.Fatal(err)
	}
	if x.Learned == nil || x.Learned.Name != 7 || x.Learned.Lifetime <= 50*time.Second || x.Learned.Lifetime > time.Minute {
		t.Errorf("learned entry %+v, want name 7 with about a minute left", x.Learned)
	}
}

// TestExplainRefusesBadProbes: a probe that cannot be built is an error,
// not a verdict.
func TestExplainRefusesBadProbes(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))
	ap := netip.AddrPortFrom
	for name, p := range map[string]Probe{
		"mixed families": {Hook: HookTCEgress, Proto: pkt.ProtoTCP, Src: ap(gw4, 1), Dst: ap(s3v6, 443)},
		"sctp":           {Hook: HookTCEgress, Proto: 132, Src: ap(gw4, 1), Dst: ap(s3v4, 443)},
		"l3 lan":         {Hook: HookXDPLAN, L3: true, Proto: pkt.ProtoTCP, Src: ap(gw4, 1), Dst: ap(s3v4, 443)},
	} {
		if _, err := Explain(l.pins.root, p); err == nil {
			t.Errorf("%s: explained, want an error", name)
		}
	}
	if _, err := Explain(t.TempDir(), Probe{Hook: HookTCEgress, Proto: pkt.ProtoTCP, Src: ap(gw4, 1), Dst: ap(s3v4, 443)}); err == nil {
		t.Error("explained with nothing pinned, want an error")
	}
}

// learningPolicy is testPolicy with a DNS name, so learned addresses count.
func learningPolicy() *config.Config {
	cfg := testPolicy(config.ModeEnforce)
	cfg.DNS.Names = []config.Name{{Match: "broker.example.test", Ports: []config.PortRange{{Proto: config.ProtoTCP, First: 8883, Last: 8883}}}}
	return cfg
}

func learnOne(t *testing.T, l *Loader, addr netip.Addr, port uint16) {
	t.Helper()
	err := l.Learn([]LearnedDest{{
		Addr: addr, Lifetime: time.Minute, Name: 7,
		Ports: []config.PortRange{{Proto: config.ProtoTCP, First: port, Last: port}},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func flowState(f *FlowEntry) string {
	if f == nil {
		return ""
	}
	return f.State
}

// mapState is what real traffic reads and writes, apart from the policy.
type mapState struct {
	Counters map[cell]tally
	Flows    map[edgewardEwFlowKey]edgewardEwFlow
	Frags    int
	Losses   EventLosses
	Budgets  []edgewardEwEventBudget
	Learned  map[edgewardEwLearnedKey]edgewardEwLearned
}

func snapshot(t *testing.T, l *Loader) mapState {
	t.Helper()
	s := mapState{Counters: readCounters(t, l), Flows: map[edgewardEwFlowKey]edgewardEwFlow{}, Learned: map[edgewardEwLearnedKey]edgewardEwLearned{}}

	var fk edgewardEwFlowKey
	var fv edgewardEwFlow
	for it := l.objs.Flows.Iterate(); it.Next(&fk, &fv); {
		s.Flows[fk] = fv
	}
	var lk edgewardEwLearnedKey
	var lv edgewardEwLearned
	for it := l.objs.Learned.Iterate(); it.Next(&lk, &lv); {
		s.Learned[lk] = lv
	}
	var gk edgewardEwFragKey
	var gv edgewardEwFragVerdict
	for it := l.objs.Frags.Iterate(); it.Next(&gk, &gv); {
		s.Frags++
	}

	var err error
	if s.Losses, err = l.Maps().EventLosses(); err != nil {
		t.Fatal(err)
	}
	if err := l.objs.Budgets.Lookup(uint32(0), &s.Budgets); err != nil {
		t.Fatal(err)
	}
	return s
}
