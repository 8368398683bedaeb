package loader

import (
	"testing"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// TestLearnedDestinations: an address the DNS guard learned opens its
// ports until it expires; a connection opened before the expiry goes on
// after it, a new one does not.
func TestLearnedDestinations(t *testing.T) {
	cfg := testPolicy(config.ModeEnforce)
	cfg.DNS.Names = []config.Name{{Match: "*.partner.test", Ports: []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}}}}
	l := openTestLoader(t, cfg)
	learned := a4("198.18.0.21")
	learn := func(lifetime time.Duration) {
		t.Helper()
		err := l.Learn([]LearnedDest{{
			Addr: learned, Lifetime: lifetime, Name: 3,
			Ports: []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	seg := func(dport uint16, flags byte) []byte {
		return pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, learned, pkt.ProtoTCP, pkt.IPv4Options{}, tcpFlags(40000, dport, flags)))
	}

	steps := []struct {
		name   string
		before func()
		packet []byte
		want   Verdict
		reason string
	}{
		{"not learned yet", nil, seg(443, syn), VerdictDrop, "no_rule"},
		{"learned: syn", func() { learn(time.Minute) }, seg(443, syn), VerdictPass, "learned"},
		{"learned: other port", nil, seg(8443, syn), VerdictDrop, "no_rule"},
		{"expired: the open connection goes on", func() { learn(-time.Second) }, seg(443, ack), VerdictPass, "flow"},
		{"expired: a new connection does not", nil, pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, learned, pkt.ProtoTCP, pkt.IPv4Options{}, tcpFlags(40001, 443, syn))), VerdictDrop, "no_rule"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before()
			}
			before := readCounters(t, l)
			runEgress(t, l, false, st.packet)
			assertOneCount(t, before, readCounters(t, l), st.want, st.reason, len(st.packet))
		})
	}

	dests, err := l.LearnedDests()
	if err != nil {
		t.Fatal(err)
	}
	if len(dests) != 0 {
		t.Errorf("expired entry listed as live: %+v", dests)
	}
	learn(time.Hour)
	if dests, _ := l.LearnedDests(); len(dests) != 1 || dests[0].Addr != learned || dests[0].Name != 3 || dests[0].Lifetime < 59*time.Minute {
		t.Errorf("LearnedDests after learning for an hour: %+v", dests)
	}
}

// TestLearnedDestinationsNeedNames: without names on the allowlist, an
// entry left in the learned map opens nothing.
func TestLearnedDestinationsNeedNames(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))
	err := l.Learn([]LearnedDest{{
		Addr: a4("198.18.0.21"), Lifetime: time.Minute,
		Ports: []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	packet := pkt.Ether(pkt.EtherIPv4, pkt.IPv4(gw4, a4("198.18.0.21"), pkt.ProtoTCP, pkt.IPv4Options{}, tcpFlags(40000, 443, syn)))
	before := readCounters(t, l)
	runEgress(t, l, false, packet)
	assertOneCount(t, before, readCounters(t, l), VerdictDrop, "no_rule", len(packet))
}
