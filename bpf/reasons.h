/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The one list of hooks, verdicts and reasons. Go reads the names from the
 * BTF of the compiled object (loader/reasons.go), so a name added here shows
 * up in metrics without touching Go. Never renumber an entry: dashboards and
 * stored counters refer to the numbers.
 */
#ifndef EW_REASONS_H
#define EW_REASONS_H

/* Where in the data path a packet was judged. */
enum ew_hook {
	EW_HOOK_TC_EGRESS = 0,
	EW_HOOK_XDP_LAN = 1,
	EW_HOOK_UPLINK_INGRESS = 2,
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
 * (or, in audit mode, would deny it).
 */
enum ew_reason {
	EW_REASON_UNKNOWN = 0,
	EW_REASON_ENDPOINT = 1,
	EW_REASON_PROXY = 2,
	EW_REASON_ARP = 3,
	EW_REASON_NDP = 4,
	EW_REASON_DHCP = 5,
	EW_REASON_FRAGMENT = 6,
	EW_REASON_MLD = 7,
	EW_REASON_LEARNED = 8,

	EW_REASON_FIRST_DENY = 16,
	EW_REASON_NO_RULE = 16,
	EW_REASON_MALFORMED = 17,
	EW_REASON_FRAGMENT_UNKNOWN = 18,
	EW_REASON_FRAGMENT_DENIED = 19,
	EW_REASON_UNSUPPORTED_PROTOCOL = 20,
	EW_REASON_NO_POLICY = 21,
	EW_REASON_HEADER_CHAIN_TOO_LONG = 22,
	EW_REASON_MAX = 32,
};

#endif
