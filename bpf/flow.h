/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The flow table: egress writes the flows it allows, uplink ingress lets
 * their replies (and ICMP errors about them) in. Timeouts follow the
 * protocol and, for TCP, the state; an entry is rewritten only when its
 * state changes or half its lifetime has passed, so a busy flow costs one
 * lookup per packet, not one write.
 */
#ifndef EW_FLOW_H
#define EW_FLOW_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "parse.h"
#include "policy.h"

#define EW_SEC 1000000000ULL

/* ew_flow_timeout is how long a flow in state lives without a packet. */
static __always_inline __u64 ew_flow_timeout(__u8 proto, __u8 state)
{
	if (proto != IPPROTO_TCP)
		return 180 * EW_SEC;
	switch (state) {
	case EW_FLOW_ESTABLISHED:
		return 5 * 24 * 3600 * EW_SEC; /* MQTT sessions idle for long */
	case EW_FLOW_CLOSING:
		return 120 * EW_SEC;
	case EW_FLOW_RESET:
		return 10 * EW_SEC;
	}
	return 60 * EW_SEC; /* SYN sent, no answer yet */
}

/* ew_flow_next is the TCP state after a packet with flags; reply is set
 * for packets from the remote side. */
static __always_inline __u8 ew_flow_next(__u8 state, __u8 flags, int reply)
{
	if (flags & EW_TCP_RST)
		return EW_FLOW_RESET;
	if (flags & EW_TCP_FIN)
		return EW_FLOW_CLOSING;
	if (state == EW_FLOW_CLOSING || state == EW_FLOW_RESET)
		return state;
	if (reply && (flags & EW_TCP_ACK))
		return EW_FLOW_ESTABLISHED;
	return state;
}

/* ew_flow_key_local builds the key of a packet that leaves: local first. */
static __always_inline void ew_flow_key_local(struct ew_flow_key *k,
					      const struct ew_packet *pkt)
{
	k->family = pkt->family;
	k->proto = pkt->proto;
	k->sport = pkt->sport;
	k->dport = pkt->dport;
	__builtin_memcpy(k->saddr, pkt->saddr, sizeof(k->saddr));
	__builtin_memcpy(k->daddr, pkt->daddr, sizeof(k->daddr));
}

/* ew_flow_key_reply builds the key of the flow an arriving packet answers. */
static __always_inline void ew_flow_key_reply(struct ew_flow_key *k,
					      const struct ew_packet *pkt)
{
	k->family = pkt->family;
	k->proto = pkt->proto;
	k->sport = pkt->dport;
	k->dport = pkt->sport;
	__builtin_memcpy(k->saddr, pkt->daddr, sizeof(k->saddr));
	__builtin_memcpy(k->daddr, pkt->saddr, sizeof(k->daddr));
}

/* ew_flow_refresh moves f to state and extends its life, writing only when
 * something worth writing changed. */
static __always_inline void ew_flow_refresh(struct ew_flow *f, __u8 proto,
					    __u8 state, __u64 now)
{
	__u64 timeout = ew_flow_timeout(proto, state);

	if (ew_explain)
		return;
	if (f->state == state && f->expires > now + timeout / 2)
		return;
	f->state = state;
	f->expires = now + timeout;
}

/* ew_flow_insert stores a new flow under key in state, with the reason
 * and endpoint of the decision that allowed it, from now. */
static __always_inline void ew_flow_insert(const struct ew_flow_key *key,
					   const struct ew_decision *d,
					   __u8 state, __u64 now)
{
	struct ew_flow fresh = {
		.state = state,
		.reason = d->reason,
		.endpoint = d->endpoint,
	};

	if (ew_explain)
		return;
	fresh.expires = now + ew_flow_timeout(key->proto, state);
	bpf_map_update_elem(&ew_flows, key, &fresh, BPF_ANY);
}

/* ew_flow_open records a new flow of a packet that leaves (or would have
 * left, for an adopted flow) in state. */
static __always_inline void ew_flow_open(const struct ew_packet *pkt,
					 const struct ew_decision *d,
					 __u8 state)
{
	struct ew_flow_key key = {};

	ew_flow_key_local(&key, pkt);
	ew_flow_insert(&key, d, state, bpf_ktime_get_boot_ns());
}

/* ew_flow_record records a packet that egress allowed as a new flow or a
 * step of one. Not inlined: it needs a flow key on the stack, and the
 * frame of the plain path must leave room for the rest of the program. */
static __noinline void ew_flow_record(const struct ew_packet *pkt,
				      const struct ew_decision *d)
{
	struct ew_flow_key key = {};
	struct ew_flow *f;
	__u64 now;

	ew_flow_key_local(&key, pkt);
	now = bpf_ktime_get_boot_ns();
	f = bpf_map_lookup_elem(&ew_flows, &key);
	if (f && f->expires > now) {
		ew_flow_refresh(f, pkt->proto,
				ew_flow_next(f->state, pkt->tcp_flags, 0), now);
		return;
	}
	ew_flow_insert(&key, d, ew_flow_next(EW_FLOW_NEW, pkt->tcp_flags, 0),
		       now);
}

/* ew_flow_track records a TCP or UDP packet that egress allowed. A TCP
 * segment without SYN, FIN or RST changes nothing that its replies do not
 * refresh too, so it costs no lookup: the common case stays cheap. */
static __always_inline void ew_flow_track(const struct ew_packet *pkt,
					  const struct ew_decision *d)
{
	if (!pkt->has_ports || pkt->later_fragment)
		return;
	if (pkt->proto != IPPROTO_TCP && pkt->proto != IPPROTO_UDP)
		return;
	if (pkt->proto == IPPROTO_TCP &&
	    !(pkt->tcp_flags & (EW_TCP_SYN | EW_TCP_FIN | EW_TCP_RST)))
		return;
	ew_flow_record(pkt, d);
}

/* ew_flow_continues lets a packet of a live flow leave that a learned
 * destination opened, after the entry itself expired: a long-lived
 * connection (an MQTT session) outlives the DNS answer that allowed it.
 * Callers ask only when the expired entry is still in the map, so other
 * denied packets cost no flow lookup; an entry evicted for room (the
 * name's address cap) does cut its flows. Not inlined, like
 * ew_flow_record. */
static __noinline void ew_flow_continues(const struct ew_packet *pkt,
					      struct ew_decision *d)
{
	struct ew_flow_key key = {};
	struct ew_flow *f;

	if (!pkt->has_ports || pkt->later_fragment)
		return;
	ew_flow_key_local(&key, pkt);
	f = bpf_map_lookup_elem(&ew_flows, &key);
	if (f && f->reason == EW_REASON_LEARNED &&
	    f->expires > bpf_ktime_get_boot_ns())
		d->reason = EW_REASON_FLOW;
}

/* ew_flow_reply returns the live flow that an arriving packet answers, and
 * moves it along, or NULL. */
static __always_inline struct ew_flow *
ew_flow_reply(const struct ew_packet *pkt)
{
	struct ew_flow_key key = {};
	struct ew_flow *f;
	__u64 now;

	/* A bare SYN opens a connection; it is never a reply. */
	if (pkt->proto == IPPROTO_TCP &&
	    (pkt->tcp_flags & (EW_TCP_SYN | EW_TCP_ACK)) == EW_TCP_SYN)
		return NULL;

	ew_flow_key_reply(&key, pkt);
	f = bpf_map_lookup_elem(&ew_flows, &key);
	if (!f)
		return NULL;
	now = bpf_ktime_get_boot_ns();
	if (f->expires <= now)
		return NULL;
	ew_flow_refresh(f, pkt->proto,
			ew_flow_next(f->state, pkt->tcp_flags, 1), now);
	return f;
}

/* ew_flow_quoted tells whether an ICMP error is about a live flow. The
 * quoted packet left (outbound, local side first) when the error arrives
 * on an uplink, and arrived (remote side first) when the gateway sends the
 * error out. Either way the error goes to the quoted packet's source: one
 * addressed elsewhere is not about that flow, whatever it quotes. */
static __always_inline int ew_flow_quoted(const struct ew_packet *pkt,
					  const struct ew_icmp_inner *inner,
					  int outbound)
{
	struct ew_flow_key key = {};
	struct ew_flow *f;

	if (!inner->valid)
		return 0;
	if (pkt->daddr[0] != inner->saddr[0] || pkt->daddr[1] != inner->saddr[1] ||
	    pkt->daddr[2] != inner->saddr[2] || pkt->daddr[3] != inner->saddr[3])
		return 0;
	key.family = inner->family;
	key.proto = inner->proto;
	if (outbound) {
		key.sport = inner->sport;
		key.dport = inner->dport;
		__builtin_memcpy(key.saddr, inner->saddr, sizeof(key.saddr));
		__builtin_memcpy(key.daddr, inner->daddr, sizeof(key.daddr));
	} else {
		key.sport = inner->dport;
		key.dport = inner->sport;
		__builtin_memcpy(key.saddr, inner->daddr, sizeof(key.saddr));
		__builtin_memcpy(key.daddr, inner->saddr, sizeof(key.daddr));
	}

	f = bpf_map_lookup_elem(&ew_flows, &key);
	return f && f->expires > bpf_ktime_get_boot_ns();
}

#endif
