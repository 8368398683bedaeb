package dnsguard

import (
	"net/netip"
)

// Reasons an answer is rejected; each is a fixed metric label
// ("rejected_" + reason) and the Reason of an Event.
const (
	ReasonPublicAnswer  = "public_answer"  // a public address outside answers_in (split-horizon leak, spoofing)
	ReasonPrivateAnswer = "private_answer" // a private, OT or special address the name may not use (rebinding)
	ReasonBadAnswer     = "bad_answer"     // question mismatch, CNAME loop or chain too long
	ReasonTruncated     = "truncated"      // the upstream answer stayed truncated; nothing learned
	ReasonLearnFailed   = "learn_failed"   // the data plane did not take the addresses
)

// special lists ranges no name without answers_in may resolve into,
// besides what netip.Addr's predicates already cover and the LAN.
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT, RFC 6598
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved and broadcast
	netip.MustParsePrefix("fec0::/10"),     // deprecated site-local
}

// nat64 is the well-known NAT64 prefix; its last 32 bits are an IPv4
// address that the translator would reach.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// pinner decides whether an answer address is acceptable for a rule.
type pinner struct {
	lan []netip.Prefix // the gateway's LAN ranges, unmapped
}

// check returns "" when addr is acceptable for r, or the reason it is
// not. addr must be unmapped.
func (p pinner) check(r *Rule, addr netip.Addr) string {
	if never(addr) {
		return ReasonPrivateAnswer
	}

	if r.AnswersIn != nil {
		if inAny(r.AnswersIn, addr) {
			return ""
		}
		if p.public(addr) {
			return ReasonPublicAnswer
		}
		return ReasonPrivateAnswer
	}

	if !p.public(addr) {
		return ReasonPrivateAnswer
	}
	return ""
}

// never reports addresses that are no destination at all, whatever the
// rule says: unspecified, loopback, multicast.
func never(addr netip.Addr) bool {
	return addr.IsUnspecified() || addr.IsLoopback() || addr.IsMulticast()
}

// public reports whether addr lies outside every private, special and LAN
// range; an address in the NAT64 prefix is judged by the IPv4 address it
// embeds.
func (p pinner) public(addr netip.Addr) bool {
	if nat64.Contains(addr) {
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte(b[12:]))
	}

	switch {
	case never(addr), addr.IsPrivate(), addr.IsLinkLocalUnicast():
		return false
	case inAny(special, addr), inAny(p.lan, addr):
		return false
	}
	return true
}

// inAny reports whether one of prefixes holds addr.
func inAny(prefixes []netip.Prefix, addr netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
