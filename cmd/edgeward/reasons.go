package main

// reasonTexts explain each reason of bpf/reasons.h in a line, for people.
// TestReasonTexts keeps it complete.
var reasonTexts = map[string]string{
	"unknown":               "no step decided: denied, to fail closed",
	"endpoint":              "destination and port of an endpoint",
	"proxy":                 "TCP to the proxy",
	"arp":                   "ARP, which the link needs",
	"ndp":                   "IPv6 neighbour or router discovery, which the link needs",
	"dhcp":                  "DHCP or DHCPv6 client, or its replies",
	"fragment":              "later fragment of an allowed datagram",
	"mld":                   "multicast listener report or query",
	"learned":               "an address the DNS guard learned for an allowed name",
	"flow":                  "belongs to a flow egress allowed",
	"icmp_error":            "ICMP error about a flow egress allowed",
	"service":               "a LAN host to a service of the gateway",
	"vpn":                   "a LAN host to a destination routed into the VPN",
	"flow_adopted":          "mid-stream packet of a connection open before enforcement, from an endpoint's port to a waiting socket",
	"peer":                  "UDP from an endpoint's port to a waiting socket (the VPN peer)",
	"no_rule":               "no endpoint, proxy or learned destination matches",
	"malformed":             "truncated or inconsistent header",
	"fragment_unknown":      "later fragment whose first fragment was not seen",
	"fragment_denied":       "later fragment of a denied datagram",
	"unsupported_protocol":  "a protocol the data plane does not let out",
	"no_policy":             "no policy applied yet",
	"header_chain_too_long": "more IPv6 extension headers than the parser walks",
	"unsolicited":           "inbound, belongs to no allowed flow",
	"no_route":              "a LAN host to a destination with no route",
	"not_a_service":         "a LAN host to a port of the gateway it does not offer",
	"not_routable":          "a LAN host to another LAN or an ignored interface",
	"dns_unguarded":         "DNS to port 53 that neither the DNS guard sent nor its transparent-mode queue let through",
	"qdisc_bypass":          "PACKET_QDISC_BYPASS on a packet socket, whose sends would skip tc egress (socket guard)",
	"af_xdp":                "setting up an AF_XDP socket (SOL_XDP), whose sends would skip tc egress (socket guard)",
}

// reasonText returns the line for a reason, or the reason itself.
func reasonText(reason string) string {
	if text, ok := reasonTexts[reason]; ok {
		return text
	}
	return reason
}
