/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Maps and the structs they hold. Go gets these types from bpf2go (-type),
 * never from a hand-written mirror.
 */
#ifndef EW_MAPS_H
#define EW_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "reasons.h"

/* Port ranges one rule entry can carry (the union of every endpoint whose
 * prefixes contain the entry's prefix). */
#define EW_MAX_RANGES 16
/* Distinct prefix lengths one address family of a policy may use. */
#define EW_MAX_PREFIX_LENS 40
/* Upper bound of rule entries in one policy, per address family. */
#define EW_MAX_RULES 262144
/* Endpoint index that means "the proxy". */
#define EW_ENDPOINT_PROXY 0xffff
/* Policy slots: the active one, and the one the next policy is written to. */
#define EW_POLICY_SLOTS 2

enum ew_mode {
	EW_MODE_ENFORCE = 0,
	EW_MODE_AUDIT = 1,
};

/* Key of an IPv4 policy entry: a prefix, masked to prefixlen bits, address
 * in network order. */
struct ew_rule4_key {
	__u32 prefixlen;
	__u32 addr;
};

/* Key of an IPv6 policy entry. */
struct ew_rule6_key {
	__u32 prefixlen;
	__u32 addr[4];
};

/* One allowed protocol and port range, granted by endpoint number endpoint
 * (its index in the configuration, or EW_ENDPOINT_PROXY). */
struct ew_port_range {
	__u16 first;
	__u16 last;
	__u8 proto;
	__u8 pad;
	__u16 endpoint;
};

/* Value of a policy entry: what may be reached inside its prefix. */
struct ew_rule {
	__u32 nranges;
	struct ew_port_range ranges[EW_MAX_RANGES];
};

/* Everything of a policy that is not an entry. */
/* The socket mark of the DNS guard's own sockets, which its NFQUEUE also
 * sets on the DNS it lets through (see intercept/), and the bits of the
 * mark it occupies. */
enum ew_marks {
	EW_GUARD_MARK = 0x4577,
	EW_GUARD_MASK = 0xffff,
};

struct ew_settings {
	__u32 generation; /* 0: no policy in this slot */
	__u32 entries4;   /* entries of ew_rules4[slot], for status */
	__u32 entries6;
	__u8 mode;
	__u8 v4_nlens;
	__u8 v6_nlens;
	__u8 learning; /* the DNS guard has names: look up learned addresses */
	__u8 nservices;
	__u8 dns_gate; /* transparent DNS: port 53 leaves only with EW_GUARD_MARK */
	__u8 pad2[2];
	/* Prefix lengths present in the policy, longest first. */
	__u8 v4_lens[EW_MAX_PREFIX_LENS];
	__u8 v6_lens[EW_MAX_PREFIX_LENS];
	/* Ports of the gateway's own services that LAN hosts may reach. */
	struct ew_port_range services[EW_MAX_RANGES];
};

/*
 * A policy lives in one slot: ew_policy_settings[slot], ew_rules4[slot] and
 * ew_rules6[slot]. ew_active names the slot packets use. The loader writes
 * a new policy into the other slot and then flips ew_active, so a packet
 * sees one policy whole (see loader/maps.go for the grace periods that make
 * this hold).
 */

/* 0 -> the active slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ew_active SEC(".maps");

/* Slot -> settings of the policy in that slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EW_POLICY_SLOTS);
	__type(key, __u32);
	__type(value, struct ew_settings);
} ew_policy_settings SEC(".maps");

/* Inner maps: the entries of one policy, sized to it. Through the outer
 * maps alone clang emits only forward declarations of the key and value
 * types; ew_lookup_policy's parameters make them complete. */
struct ew_rules4_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct ew_rule4_key);
	__type(value, struct ew_rule);
};

struct ew_rules6_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct ew_rule6_key);
	__type(value, struct ew_rule);
};

/* Slot -> IPv4 entries of the policy in that slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, EW_POLICY_SLOTS);
	__type(key, __u32);
	__array(values, struct ew_rules4_inner);
} ew_rules4 SEC(".maps");

/* Slot -> IPv6 entries of the policy in that slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, EW_POLICY_SLOTS);
	__type(key, __u32);
	__array(values, struct ew_rules6_inner);
} ew_rules6 SEC(".maps");

/* Key of a learned destination: IPv4 in addr[0], network order. */
struct ew_learned_key {
	__u32 family;
	__u32 addr[4];
};

/* What a learned destination allows, and until when. */
struct ew_learned {
	__u64 expires;  /* bpf_ktime_get_boot_ns(); past it the entry is dead */
	__u16 name;     /* index of the allowlist entry that taught it */
	__u8 nranges;
	__u8 pad;
	__u32 pad2;
	struct ew_port_range ranges[EW_MAX_RANGES];
};

#define EW_MAX_LEARNED 65536

/* Address the DNS guard resolved for an allowed name -> its ports and
 * expiry. Written by the daemon before the answer is released; expiry is
 * checked here, against the kernel clock. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EW_MAX_LEARNED);
	__type(key, struct ew_learned_key);
	__type(value, struct ew_learned);
} ew_learned_dests SEC(".maps");

/* Role of an interface, as the daemon classified it. */
enum ew_role {
	EW_ROLE_UPLINK = 0,
	EW_ROLE_VPN = 1,
	EW_ROLE_LAN = 2,
	EW_ROLE_IGNORE = 3,
	EW_ROLE_LOOPBACK = 4,
};

/* Interface index -> enum ew_role. An index missing here is an uplink. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} ew_ifaces SEC(".maps");

/* A flow seen leaving an uplink: local side first. */
struct ew_flow_key {
	__u8 family;
	__u8 proto;
	__u16 pad;
	__u16 sport; /* local port, host order */
	__u16 dport; /* remote port */
	__u32 saddr[4];
	__u32 daddr[4];
};

enum ew_flow_state {
	EW_FLOW_NEW = 0,         /* TCP SYN sent, or UDP */
	EW_FLOW_ESTABLISHED = 1, /* TCP: the remote answered */
	EW_FLOW_CLOSING = 2,     /* TCP: FIN seen */
	EW_FLOW_RESET = 3,       /* TCP: RST seen */
};

struct ew_flow {
	__u64 expires; /* bpf_ktime_get_boot_ns() */
	__u8 state;
	__u8 reason;   /* why egress allowed it */
	__u16 endpoint;
	__u32 pad;
};

/* Flows egress allowed -> their state. Ingress lets their replies in. LRU:
 * under pressure the least recently used flow goes first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ew_flow_key);
	__type(value, struct ew_flow);
} ew_flows SEC(".maps");

/* A packet that was dropped (or, in audit mode, would have been), for the
 * daemon's log and `edgeward events`. Addresses in network order, ports
 * in host order. */
struct ew_event {
	__u64 time_ns;    /* bpf_ktime_get_boot_ns() */
	__u32 generation; /* of the policy that judged it */
	__u32 ifindex;
	__u8 hook;
	__u8 verdict;
	__u8 reason;
	__u8 family;
	__u8 proto;
	__u8 pad;
	__u16 sport;
	__u16 dport;
	__u16 pad2;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* Deny events to user space. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} ew_events SEC(".maps");

/* Events one CPU may send per window of 2^EW_EVENT_WINDOW_SHIFT jiffies
 * (256 jiffies: about a second at HZ=250, a quarter at HZ=1000). Jiffies,
 * not the nanosecond clock: reading them costs next to nothing, and a deny
 * storm must not slow the packet path. */
#define EW_EVENT_BUDGET 200
#define EW_EVENT_WINDOW_SHIFT 8

/* Deny events one CPU sent in the current window. */
struct ew_event_budget {
	__u64 window;
	__u64 sent;
};

/* 0 -> this CPU's event budget. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ew_event_budget);
} ew_event_budgets SEC(".maps");

enum ew_event_loss {
	EW_LOSS_RATE_LIMITED = 0,
	EW_LOSS_RING_FULL = 1,
	EW_LOSS_MAX = 2,
};

/* Cause -> deny events not sent, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EW_LOSS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ew_event_losses SEC(".maps");

/* Packets and bytes of one (hook, verdict, reason) cell. */
struct ew_counter {
	__u64 packets;
	__u64 bytes;
};

#define EW_COUNTER_SLOTS (EW_HOOK_MAX * EW_VERDICT_MAX * EW_REASON_MAX)

/* Counter cell index -> packets and bytes, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EW_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct ew_counter);
} ew_counters SEC(".maps");

/* Identity of an IP datagram whose fragments we follow. */
struct ew_frag_key {
	__u8 family;
	__u8 proto;
	__u16 pad;
	__u32 id;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* What the first fragment of a datagram was judged. */
struct ew_frag_verdict {
	__u8 allowed;
	__u8 reason;
	__u16 endpoint;
};

/* Datagram identity -> verdict of its first fragment. LRU: old datagrams
 * age out on their own. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ew_frag_key);
	__type(value, struct ew_frag_verdict);
} ew_frags SEC(".maps");

/*
 * Explain mode. `edgeward explain` loads a twin of a program with ew_explain
 * set, sharing the live maps, and runs it on a made-up packet with
 * BPF_PROG_TEST_RUN. The verifier removes the branches a constant rules out:
 * the enforcing programs carry no trace of this mode, and the twin writes
 * nothing real traffic uses (counters, flows, fragments, events). It stores
 * its decision in ew_explained instead, a map of its own.
 */
volatile const __u8 ew_explain = 0;

/* The decision of one explained packet. */
struct ew_explanation {
	__u32 generation;
	__u16 endpoint;   /* endpoint index, or dns.names index when learned */
	__u8 hook;
	__u8 verdict;
	__u8 reason;
	__u8 decided;     /* 1 once the program reached its exit */
	__u8 learned_expired;
	__u8 pad;
};

/* 0 -> the last explained decision. Never pinned: each twin has its own. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ew_explanation);
} ew_explained SEC(".maps");

#endif
