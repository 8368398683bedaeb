package main

import (
	"net/netip"
	"testing"

	"github.com/edgeward/edgeward/internal/pkt"
	"github.com/edgeward/edgeward/loader"
)

// TestReasonTexts: every reason of the data plane has a line for people,
// and no line names a reason that does not exist.
func TestReasonTexts(t *testing.T) {
	reasons, err := loader.Reasons()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, r := range reasons {
		known[r.String()] = true
		if _, ok := reasonTexts[r.String()]; !ok {
			t.Errorf("reason %s has no entry in reasonTexts", r)
		}
	}
	for name := range reasonTexts {
		if !known[name] {
			t.Errorf("reasonTexts names %s, which bpf/reasons.h does not have", name)
		}
	}
}

func TestParseProbeArguments(t *testing.T) {
	if _, err := parseEndpoint("10.0.0.1", pkt.ProtoTCP); err == nil {
		t.Error("tcp without a port parsed")
	}
	if ap, err := parseEndpoint("[2001:db8::1]:443", pkt.ProtoTCP); err != nil || ap != netip.MustParseAddrPort("[2001:db8::1]:443") {
		t.Errorf("ipv6 endpoint: %v %v", ap, err)
	}
	if ap, err := parseEndpoint("2001:db8::1", pkt.ProtoICMP); err != nil || ap.Addr() != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("icmp endpoint: %v %v", ap, err)
	}
	if _, err := parseProto("sctp"); err == nil {
		t.Error("sctp parsed")
	}
	if f, err := parseTCPFlags("", true); err != nil || f != pkt.TCPAck {
		t.Errorf("default inbound flags %#x %v, want ack", f, err)
	}
	if f, err := parseTCPFlags("syn,ack", false); err != nil || f != pkt.TCPSyn|pkt.TCPAck || tcpFlagsString(f) != "syn,ack" {
		t.Errorf("syn,ack: %#x %v", f, err)
	}
	if _, err := parseTCPFlags("urg", false); err == nil {
		t.Error("urg parsed")
	}
	if _, err := sourceOf("", netip.Addr{}, pkt.ProtoTCP); err == nil {
		t.Error("inbound probe without -src accepted")
	}
	if ap, err := sourceOf("192.0.2.1", netip.Addr{}, pkt.ProtoUDP); err != nil || ap.Port() != ephemeralPort {
		t.Errorf("-src without port: %v %v", ap, err)
	}
}
