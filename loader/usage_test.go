package loader

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// TestUsageFromPins: a reader of the pins counts the policy's entries per
// family, the flows egress recorded and every learned destination
// (expired ones too: they hold room), and lists only the live learned
// destinations.
func TestUsageFromPins(t *testing.T) {
	cfg := testPolicy(config.ModeEnforce)
	l := openTestLoader(t, cfg)
	want, err := Compile(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}

	for _, sport := range []uint16{40000, 40001} {
		syn := pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, a4("10.20.8.5"), pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(sport, 443)))
		runEgress(t, l, false, syn)
	}
	https := []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}}
	err = l.Learn([]LearnedDest{
		{Addr: a4("198.18.0.1"), Ports: https, Lifetime: time.Hour, Name: 2},
		{Addr: netip.MustParseAddr("2001:db8:18::1"), Ports: https, Lifetime: time.Minute, Name: 0},
		{Addr: a4("198.18.0.3"), Ports: https, Lifetime: -time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}

	maps, err := OpenPinned(l.pins.root)
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	usage, err := maps.Usage()
	if err != nil {
		t.Fatal(err)
	}
	capacity := func(name string) int { return int(l.spec.Maps[name].MaxEntries) }
	wantUsage := []MapUsage{
		{"ew_tables/ipv4", len(want.entries[indexIPv4]), MaxRules},
		{"ew_tables/ipv6", len(want.entries[indexIPv6]), MaxRules},
		{"ew_flows", 2, capacity("ew_flows")},
		{"ew_learned_dests", 3, capacity("ew_learned_dests")},
		{"ew_frags", 0, capacity("ew_frags")},
		{"ew_ifaces", 0, capacity("ew_ifaces")},
	}
	if diff := cmp.Diff(wantUsage, usage); diff != "" {
		t.Errorf("Usage (-want +got):\n%s", diff)
	}

	live, err := maps.LearnedDests()
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Addr]uint16{}
	for _, d := range live {
		got[d.Addr] = d.Name
		if d.Lifetime <= 0 || d.Lifetime > time.Hour || len(d.Ports) != 1 {
			t.Errorf("live entry %s: lifetime %s, ports %v", d.Addr, d.Lifetime, d.Ports)
		}
	}
	wantLive := map[netip.Addr]uint16{a4("198.18.0.1"): 2, netip.MustParseAddr("2001:db8:18::1"): 0}
	if diff := cmp.Diff(wantLive, got); diff != "" {
		t.Errorf("live learned destinations by name index (-want +got):\n%s", diff)
	}
}
