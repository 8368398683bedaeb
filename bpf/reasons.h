/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The one list of hooks, verdicts and reasons. Go reads the names from the
 * BTF of the compiled object (loader/reasons.go), so a name added here shows
 * up in metrics without touching Go. Never renumber an entry: dashboards and
 * stored counters refer to the numbers.
 */
#ifndef EW_REASONS_H
#define EW_REASONS_H

/* Where in the data path a packet was judged. EW_HOOK_SOCKET is the socket
 * guard (sockguard.h): it judges socket calls of the guarded cgroup's
 * processes, not packets, and its cells count calls. */
enum ew_hook {
	EW_HOOK_TC_EGRESS = 0,
	EW_HOOK_XDP_LAN = 1,
	EW_HOOK_UPLINK_INGRESS = 2,
	EW_HOOK_SOCKET = 3,
	EW_HOOK_MAX = 4,
};

/* What happened to the packet. AUDIT: would have been dropped, was passed. */
enum ew_verdict {
	EW_VERDICT_PASS = 0,
	EW_VERDICT_DROP = 1,
	EW_VERDICT_AUDIT = 2,
	EW_VERDICT_MAX = 3,
};

/*
 * Why. Reasons below EW_REASON_FIRST_DENY allow a packet, the others deny it
 * (or, in audit mode, would deny it). Reasons from EW_REASON_FIRST_SOCKET on
 * are the socket guard's (EW_HOOK_SOCKET) and deny a call, never a packet.
 */
enum ew_reason {
	EW_REASON_UNKNOWN = 0,
	EW_REASON_ENDPOINT = 1,       /* destination and port of an endpoint */
	EW_REASON_PROXY = 2,          /* TCP to the proxy */
	EW_REASON_ARP = 3,
	EW_REASON_NDP = 4,            /* IPv6 neighbour and router discovery */
	EW_REASON_DHCP = 5,           /* DHCP or DHCPv6 client, or its replies */
	EW_REASON_FRAGMENT = 6,       /* later fragment of an allowed datagram */
	EW_REASON_MLD = 7,            /* multicast listener reports and queries */
	EW_REASON_LEARNED = 8,        /* address learned by the DNS guard */
	EW_REASON_FLOW = 9,           /* reply of a flow egress allowed */
	EW_REASON_ICMP_ERROR = 10,    /* ICMP error about a flow egress allowed */
	EW_REASON_SERVICE = 11,       /* LAN host to a service of the gateway */
	EW_REASON_VPN = 12,           /* LAN host to a destination behind the VPN */
	EW_REASON_FLOW_ADOPTED = 13,  /* mid-stream packet of an allowed tuple */
	EW_REASON_PEER = 14,          /* UDP from an endpoint's port (VPN peer) */

	EW_REASON_FIRST_DENY = 32,
	EW_REASON_NO_RULE = 32,       /* no endpoint, proxy or learned address */
	EW_REASON_MALFORMED = 33,     /* truncated or inconsistent header */
	EW_REASON_FRAGMENT_UNKNOWN = 34,
	EW_REASON_FRAGMENT_DENIED = 35,
	EW_REASON_UNSUPPORTED_PROTOCOL = 36,
	EW_REASON_NO_POLICY = 37,
	EW_REASON_HEADER_CHAIN_TOO_LONG = 38,
	EW_REASON_UNSOLICITED = 39,   /* inbound, belongs to no allowed flow */
	EW_REASON_NO_ROUTE = 40,      /* LAN host to a destination with no route */
	EW_REASON_NOT_A_SERVICE = 41, /* LAN host to a gateway port not offered */
	EW_REASON_NOT_ROUTABLE = 42,  /* LAN host to another LAN or ignored port */
	EW_REASON_DNS_UNGUARDED = 43, /* DNS the guard neither sent nor let through */

	EW_REASON_FIRST_SOCKET = 56,
	EW_REASON_QDISC_BYPASS = 56,  /* PACKET_QDISC_BYPASS: sends skip tc egress */
	EW_REASON_AF_XDP = 57,        /* AF_XDP set-up (SOL_XDP): sends skip tc */
	EW_REASON_MAX = 64,
};

#endif
