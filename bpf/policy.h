/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The policy decision shared by every hook: link-layer needs, fragments,
 * endpoints and the proxy.
 */
#ifndef EW_POLICY_H
#define EW_POLICY_H

#include <linux/bpf.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "parse.h"

/* ICMPv6 types of neighbour discovery (RFC 4861); the uapi headers do not
 * export them. */
#define EW_ND_ROUTER_SOLICIT 133
#define EW_ND_NEIGHBOUR_SOLICIT 135
#define EW_ND_NEIGHBOUR_ADVERT 136
#define EW_ND_ROUTER_ADVERT 134
#define EW_MLD_QUERY 130

/* A decision: the reason, the endpoint that granted it, and the policy
 * generation that made it. */
struct ew_decision {
	__u8 reason;
	__u8 learned_expired; /* the destination was learned; it expired */
	__u16 endpoint;
	__u32 generation;
	__u8 adoptable; /* from an endpoint's own port: pass if a socket waits */
	__u8 pad[3];
};

/* ew_mask_v4 keeps the first len bits of a network-order IPv4 address. */
static __always_inline __u32 ew_mask_v4(__u32 addr, __u32 len)
{
	if (len == 0)
		return 0;
	if (len >= 32)
		return addr;
	return addr & bpf_htonl(0xffffffffU << (32 - len));
}

/* ew_find_rule4 returns the entry of the longest IPv4 prefix of the policy
 * that contains the destination, or NULL. The policy lists the prefix
 * lengths it uses, longest first: one hash lookup per distinct length. */
static __always_inline struct ew_rule *
ew_find_rule4(void *rules, const struct ew_settings *s,
	      const struct ew_packet *pkt, struct ew_rule4_key *key)
{
	for (int i = 0; i < EW_MAX_PREFIX_LENS; i++) {
		struct ew_rule *rule;

		if (i >= s->v4_nlens)
			break;
		key->prefixlen = s->v4_lens[i];
		key->addr = ew_mask_v4(pkt->daddr[0], key->prefixlen);
		rule = bpf_map_lookup_elem(rules, key);
		if (rule)
			return rule;
	}
	return NULL;
}

/* ew_mask_v6 fills key->addr with the first key->prefixlen bits of addr. */
static __always_inline void ew_mask_v6(struct ew_rule6_key *key,
				       const __u32 *addr)
{
#pragma unroll
	for (int w = 0; w < 4; w++) {
		int bits = (int)key->prefixlen - w * 32;

		if (bits <= 0)
			key->addr[w] = 0;
		else
			key->addr[w] = ew_mask_v4(addr[w], bits);
	}
}

/* ew_find_rule6 is ew_find_rule4 for IPv6. */
static __always_inline struct ew_rule *
ew_find_rule6(void *rules, const struct ew_settings *s,
	      const struct ew_packet *pkt, struct ew_rule6_key *key)
{
	for (int i = 0; i < EW_MAX_PREFIX_LENS; i++) {
		struct ew_rule *rule;

		if (i >= s->v6_nlens)
			break;
		key->prefixlen = s->v6_lens[i];
		ew_mask_v6(key, pkt->daddr);
		rule = bpf_map_lookup_elem(rules, key);
		if (rule)
			return rule;
	}
	return NULL;
}

/* ew_match_ports looks for the packet's protocol and port among the rule's
 * ranges. The rule carries the ranges of every endpoint containing it, so a
 * miss here is final. */
static __always_inline void ew_match_ports(const struct ew_rule *rule,
				      const struct ew_packet *pkt,
				      struct ew_decision *d)
{
	for (int i = 0; i < EW_MAX_RANGES; i++) {
		const struct ew_port_range *r = &rule->ranges[i];

		if (i >= rule->nranges)
			break;
		if (r->proto != pkt->proto)
			continue;
		if (pkt->dport < r->first || pkt->dport > r->last)
			continue;
		d->endpoint = r->endpoint;
		d->reason = r->endpoint == EW_ENDPOINT_PROXY ?
				    EW_REASON_PROXY :
				    EW_REASON_ENDPOINT;
		return;
	}
}

/* ew_match_learned allows a packet to a destination the DNS guard learned,
 * while the entry lives. Not inlined: its parameter puts the learned
 * value's type into BTF. */
static __noinline void ew_match_learned(const struct ew_learned *l,
					const struct ew_packet *pkt,
					struct ew_decision *d)
{
	if (!l)
		return;
	if (l->expires <= bpf_ktime_get_boot_ns()) {
		d->learned_expired = 1;
		return;
	}
	for (int i = 0; i < EW_MAX_RANGES; i++) {
		const struct ew_port_range *r = &l->ranges[i];

		if (i >= l->nranges)
			break;
		if (r->proto == pkt->proto && pkt->dport >= r->first &&
		    pkt->dport <= r->last) {
			d->reason = EW_REASON_LEARNED;
			d->endpoint = l->name;
			return;
		}
	}
}

/* ew_lookup_learned looks for the destination among learned addresses. */
static __always_inline void ew_lookup_learned(const struct ew_packet *pkt,
					      struct ew_decision *d)
{
	struct ew_learned_key key = { .family = pkt->family };
	struct ew_learned *l;

	__builtin_memcpy(key.addr, pkt->daddr, sizeof(key.addr));
	l = bpf_map_lookup_elem(&ew_learned_dests, &key);
	if (l)
		ew_match_learned(l, pkt, d);
}

/* Scratch space for the map keys of one lookup. */
struct ew_lookup_keys {
	struct ew_rule4_key v4;
	struct ew_rule6_key v6;
};

/* ew_lookup_policy decides a packet with ports by the endpoints and the
 * proxy of the policy in slot. */
static __always_inline void ew_lookup_policy(const struct ew_settings *s,
					__u32 slot,
					const struct ew_packet *pkt,
					struct ew_lookup_keys *keys,
					struct ew_decision *d)
{
	struct ew_rule *rule = NULL;
	void *rules;

	d->reason = EW_REASON_NO_RULE;
	if (pkt->family == 4) {
		rules = bpf_map_lookup_elem(&ew_rules4, &slot);
		if (rules)
			rule = ew_find_rule4(rules, s, pkt, &keys->v4);
	} else {
		rules = bpf_map_lookup_elem(&ew_rules6, &slot);
		if (rules)
			rule = ew_find_rule6(rules, s, pkt, &keys->v6);
	}
	if (rule)
		ew_match_ports(rule, pkt, d);
	if (d->reason == EW_REASON_NO_RULE && s->learning)
		ew_lookup_learned(pkt, d);
}

/* ew_link_scope tells whether the destination never leaves the link:
 * IPv4 limited broadcast, IPv6 link-local unicast or link-scope
 * multicast. */
static __always_inline int ew_link_scope(const struct ew_packet *pkt)
{
	const __u8 *d = (const __u8 *)pkt->daddr;

	if (pkt->family == 4)
		return pkt->daddr[0] == 0xffffffff;
	if (d[0] == 0xfe && (d[1] & 0xc0) == 0x80)
		return 1;
	return d[0] == 0xff && (d[1] & 0x0f) == 2;
}

/* ew_link_need names what an interface needs to work at all: neighbour
 * discovery, multicast listener reports and DHCP client messages. It
 * judges the packet's kind only; callers also check that it stays on the
 * link, or these exceptions would carry data anywhere. */
static __always_inline int ew_link_need(const struct ew_packet *pkt)
{
	if (pkt->later_fragment || pkt->fragment)
		return EW_REASON_UNKNOWN;

	if (pkt->proto == IPPROTO_ICMPV6 && pkt->family == 6) {
		switch (pkt->icmp_type) {
		case EW_ND_ROUTER_SOLICIT:
		case EW_ND_NEIGHBOUR_SOLICIT:
		case EW_ND_NEIGHBOUR_ADVERT:
			return EW_REASON_NDP;
		case ICMPV6_MGM_REPORT:
		case ICMPV6_MLD2_REPORT:
			return EW_REASON_MLD;
		}
		return EW_REASON_UNKNOWN;
	}

	if (pkt->proto != IPPROTO_UDP || !pkt->has_ports)
		return EW_REASON_UNKNOWN;
	if (pkt->family == 4 && pkt->sport == 68 && pkt->dport == 67)
		return EW_REASON_DHCP;
	if (pkt->family == 6 && pkt->sport == 546 && pkt->dport == 547)
		return EW_REASON_DHCP;
	return EW_REASON_UNKNOWN;
}

/* ew_link_need_reply allows what an uplink must receive to work: router
 * and neighbour discovery, multicast listener queries, DHCP replies. */
static __always_inline int ew_link_need_reply(const struct ew_packet *pkt)
{
	if (pkt->later_fragment)
		return EW_REASON_UNKNOWN;

	if (pkt->proto == IPPROTO_ICMPV6 && pkt->family == 6) {
		switch (pkt->icmp_type) {
		case EW_ND_ROUTER_ADVERT:
		case EW_ND_NEIGHBOUR_SOLICIT:
		case EW_ND_NEIGHBOUR_ADVERT:
			return EW_REASON_NDP;
		case EW_MLD_QUERY:
			return EW_REASON_MLD;
		}
		return EW_REASON_UNKNOWN;
	}

	if (pkt->proto != IPPROTO_UDP || !pkt->has_ports)
		return EW_REASON_UNKNOWN;
	if (pkt->family == 4 && pkt->sport == 67 && pkt->dport == 68)
		return EW_REASON_DHCP;
	if (pkt->family == 6 && pkt->sport == 547 && pkt->dport == 546)
		return EW_REASON_DHCP;
	return EW_REASON_UNKNOWN;
}

/* ew_match_service tells whether a packet to the gateway itself is for one
 * of the services LAN hosts may use. */
static __always_inline int ew_match_service(const struct ew_settings *s,
					    const struct ew_packet *pkt)
{
	if (!pkt->has_ports)
		return 0;
	for (int i = 0; i < EW_MAX_RANGES; i++) {
		const struct ew_port_range *r = &s->services[i];

		if (i >= s->nservices)
			break;
		if (r->proto == pkt->proto && pkt->dport >= r->first &&
		    pkt->dport <= r->last)
			return 1;
	}
	return 0;
}

static __always_inline void ew_frag_key_for(struct ew_frag_key *key,
					    const struct ew_packet *pkt)
{
	key->family = pkt->family;
	key->proto = pkt->proto;
	key->id = pkt->frag_id;
	__builtin_memcpy(key->saddr, pkt->saddr, sizeof(key->saddr));
	__builtin_memcpy(key->daddr, pkt->daddr, sizeof(key->daddr));
}

/* ew_follow_fragment judges a non-first fragment by its first fragment.
 * Without a record of the first one it has nothing to go by and denies. */
static __always_inline void ew_follow_fragment(const struct ew_packet *pkt,
					       struct ew_decision *d)
{
	struct ew_frag_key key = {};
	struct ew_frag_verdict *first;

	ew_frag_key_for(&key, pkt);
	first = bpf_map_lookup_elem(&ew_frags, &key);
	if (!first) {
		d->reason = EW_REASON_FRAGMENT_UNKNOWN;
		return;
	}
	d->endpoint = first->endpoint;
	d->reason = first->allowed ? EW_REASON_FRAGMENT :
				     EW_REASON_FRAGMENT_DENIED;
}

/* ew_remember_fragment records the verdict of a first fragment for the
 * fragments that follow it. */
static __always_inline void ew_remember_fragment(const struct ew_packet *pkt,
						 const struct ew_decision *d)
{
	struct ew_frag_key key = {};
	struct ew_frag_verdict v = {
		.allowed = d->reason < EW_REASON_FIRST_DENY,
		.reason = d->reason,
		.endpoint = d->endpoint,
	};

	if (ew_explain)
		return;
	ew_frag_key_for(&key, pkt);
	bpf_map_update_elem(&ew_frags, &key, &v, BPF_ANY);
}

/* ew_decide judges a parsed IP packet leaving on an uplink against the
 * policy in slot. need is what ew_link_need says of it, on_link whether the
 * destination is a neighbour on that link: link needs pass only for
 * packets of the gateway itself that stay on the link. */
static __always_inline void ew_decide(const struct ew_settings *s, __u32 slot,
				      const struct ew_packet *pkt, int need,
				      int on_link, struct ew_decision *d)
{
	/* Not zeroed: each lookup writes every byte of the key it uses. */
	struct ew_lookup_keys keys;

	if (need != EW_REASON_UNKNOWN && !pkt->forwarded &&
	    (on_link || ew_link_scope(pkt))) {
		d->reason = need;
		return;
	}

	if (pkt->later_fragment) {
		ew_follow_fragment(pkt, d);
		return;
	}

	d->reason = EW_REASON_NO_RULE;
	if (pkt->has_ports)
		ew_lookup_policy(s, slot, pkt, &keys, d);

	if (pkt->fragment)
		ew_remember_fragment(pkt, d);
}

#endif
