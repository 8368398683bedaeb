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
/* Endpoint index that means "the proxy". */
#define EW_ENDPOINT_PROXY 0xffff
/* Policy slots: the active one, and the one the next policy is written to. */
#define EW_POLICY_SLOTS 2

enum ew_mode {
	EW_MODE_ENFORCE = 0,
	EW_MODE_AUDIT = 1,
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

/* A ruleset: what may be reached inside a prefix of the policy. Prefixes
 * that grant the same ranges share one. */
struct ew_rule {
	__u32 nranges;
	struct ew_port_range ranges[EW_MAX_RANGES];
};

/* The socket mark of the DNS guard's own sockets, which its NFQUEUE also
 * sets on the DNS it lets through (see intercept/), and the bits of the
 * mark it occupies. */
enum ew_marks {
	EW_GUARD_MARK = 0x4577,
	EW_GUARD_MASK = 0xffff,
};

/*
 * The prefixes of a policy live in hash tables of our own, one per address
 * family: arrays of buckets, each with room for EW_BUCKET_SLOTS prefixes.
 * A prefix sits in its home bucket, chosen by a multiply-shift hash of its
 * masked address and length (struct ew_table_hash), or, when that bucket is full, in the stash:
 * the buckets after the last home bucket, chosen by a second hash. A full
 * home bucket has more set, so a lookup costs one bucket, and a second one
 * only for an address whose home bucket overflowed. The loader draws other
 * multipliers, and makes the table larger, until every prefix fits this
 * way; a policy for which none of its tries fits is refused. Compared with
 * a kernel hash map there is no key copy, no general hash of the key and
 * no memcmp.
 *
 * An address is compared as two 64-bit words: its 16 bytes (an IPv4
 * address: 4 bytes, then 12 zero bytes) loaded as this machine loads them.
 * A slot's rule word is ((prefix length + 1) << 24) | flags | ruleset: the
 * prefix length, and the index in the policy's rulesets of the port ranges
 * it grants. A free slot has rule word 0, which no lookup asks for. The
 * first of those ranges also sits in the bucket, so that a packet it
 * grants costs no second lookup; EW_RULE_MORE_RANGES says whether the
 * ruleset has others.
 */
#define EW_BUCKET_SLOTS 4
#define EW_RULE_LEN_SHIFT 24
#define EW_RULE_MORE_RANGES 0x800000
#define EW_RULESET_MASK 0x7fffff

/* A bucket of a policy table. */
struct ew_bucket {
	__u64 hi[EW_BUCKET_SLOTS]; /* masked address, bytes 0-7 */
	__u64 lo[EW_BUCKET_SLOTS]; /* bytes 8-15 */
	__u32 rule[EW_BUCKET_SLOTS];
	struct ew_port_range first[EW_BUCKET_SLOTS];
	__u32 more; /* prefixes of this home bucket are in the stash too */
	__u32 pad;
};

/* One hash of a policy table: the bucket of a masked address hi, lo at
 * the family's i-th prefix length is first + (((hi ^ hi >> 32) * mul[0] +
 * (lo ^ lo >> 32) * mul[1] + salt[i]) >> shift), in 64-bit arithmetic.
 * Multiply-shift hashing lets an input bit reach only the product's bits
 * at and above its own, so each word's high half is first folded into its
 * low half: every byte of the address then reaches the top bits that pick
 * the bucket (a site's subnet ID and interface ID sit in the last byte of
 * each half). salt[i], different per length, sends one address at
 * different lengths to different buckets. */
struct ew_table_hash {
	__u64 mul[2];
	__u64 salt[EW_MAX_PREFIX_LENS];
	__u32 first;
	__u8 shift;
	__u8 pad[3];
};

/* What a policy holds for one address family. */
struct ew_family_policy {
	/* [0] finds a prefix's home bucket, [1] its stash bucket. */
	struct ew_table_hash hash[2];
	/* The prefix lengths present, longest first, and the mask of each,
	 * laid out as the addresses they mask. */
	__u64 masks[EW_MAX_PREFIX_LENS][2];
	__u8 lens[EW_MAX_PREFIX_LENS];
	__u32 entries; /* prefixes in the table, for status */
	__u8 nlens;
	__u8 pad[3];
};

/* Index of an address family in struct ew_settings and ew_tables. */
enum ew_family_index {
	EW_FAMILY_IPV4 = 0,
	EW_FAMILY_IPV6 = 1,
	EW_FAMILIES = 2,
};

/* Everything of a policy that is not a table. */
struct ew_settings {
	__u32 generation; /* 0: no policy in this slot */
	__u8 mode;
	__u8 learning; /* the DNS guard has names: look up learned addresses */
	__u8 nservices;
	__u8 dns_gate; /* transparent DNS: port 53 leaves only with EW_GUARD_MARK */
	struct ew_family_policy family[EW_FAMILIES];
	/* Ports of the gateway's own services that LAN hosts may reach. */
	struct ew_port_range services[EW_MAX_RANGES];
};

/*
 * A policy lives in one slot: ew_policies[slot], its tables
 * ew_tables[EW_FAMILIES * slot + family] and its rulesets
 * ew_rulesets[slot]. ew_slot names the slot packets use. The loader writes
 * a new policy into the other slot and then flips ew_slot, so a packet
 * sees one policy whole (see loader/maps.go for the grace periods that
 * make this hold). The names differ from those of the kernel hash maps
 * that held policies before (ew_active, ew_policy_settings, ew_rules4,
 * ew_rules6): during an upgrade the programs still attached keep their own
 * maps until the new ones replace them.
 */

/* 0 -> the active slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ew_slot SEC(".maps");

/* Slot -> settings of the policy in that slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EW_POLICY_SLOTS);
	__type(key, __u32);
	__type(value, struct ew_settings);
} ew_policies SEC(".maps");

/* Inner maps, sized to each policy (BPF_F_INNER_MAP lets their sizes
 * differ). */
struct ew_table_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ew_bucket);
};

struct ew_rulesets_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ew_rule);
};

/* EW_FAMILIES * slot + family -> a table of the policy in that slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, EW_POLICY_SLOTS * EW_FAMILIES);
	__type(key, __u32);
	__array(values, struct ew_table_inner);
} ew_tables SEC(".maps");

/* Slot -> the distinct port range sets of the policy in that slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, EW_POLICY_SLOTS);
	__type(key, __u32);
	__array(values, struct ew_rulesets_inner);
} ew_rulesets SEC(".maps");

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
