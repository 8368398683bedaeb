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

/* A decision: the reason, and the endpoint that granted it (for explain). */
struct ew_decision {
	__u8 reason;
	__u16 endpoint;
};

/* ew_mask_v4 keeps the first len bits of a network-order IPv4 address. */
static __always_inline __u32 ew_mask_v4(__u32 addr, __u8 len)
{
	if (len == 0)
		return 0;
	return addr & bpf_htonl(0xffffffffU << (32 - len));
}

/* ew_rule_key_for fills key with the first len bits of the destination. */
static __always_inline void ew_rule_key_for(struct ew_rule_key *key,
					    const struct ew_packet *pkt,
					    __u8 len)
{
	key->family = pkt->family;
	key->prefixlen = len;
	if (pkt->family == 4) {
		key->addr[0] = ew_mask_v4(pkt->daddr[0], len);
		return;
	}

#pragma unroll
	for (int w = 0; w < 4; w++) {
		int bits = (int)len - w * 32;

		if (bits >= 32)
			key->addr[w] = pkt->daddr[w];
		else if (bits <= 0)
			key->addr[w] = 0;
		else
			key->addr[w] = ew_mask_v4(pkt->daddr[w], bits);
	}
}

/* ew_find_rule returns the entry of the longest prefix of the policy that
 * contains the destination, or NULL. The policy lists the prefix lengths it
 * uses, longest first, so this costs one hash lookup per distinct length. */
static __always_inline struct ew_rule *
ew_find_rule(void *rules, const struct ew_rule *settings,
	     const struct ew_packet *pkt, struct ew_rule_key *key)
{
	const __u8 *lens = settings->v4_lens;
	__u8 n = settings->v4_nlens;

	if (pkt->family == 6) {
		lens = settings->v6_lens;
		n = settings->v6_nlens;
	}

	for (int i = 0; i < EW_MAX_PREFIX_LENS; i++) {
		struct ew_rule *rule;

		if (i >= n)
			break;
		ew_rule_key_for(key, pkt, lens[i]);
		rule = bpf_map_lookup_elem(rules, key);
		if (rule)
			return rule;
	}
	return NULL;
}

/* ew_match_ports looks for the packet's protocol and port among the rule's
 * ranges. The rule carries the ranges of every endpoint containing it, so a
 * miss here is final. */
static __always_inline int ew_match_ports(const struct ew_rule *rule,
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
		return 1;
	}
	return 0;
}

/* ew_lookup_policy decides a packet with ports by the endpoints and the
 * proxy; key is scratch space for the map key. Not inlined: one copy of the
 * lookup loops serves every call site, and its parameters put the policy
 * types into BTF for the generated Go bindings. */
static __noinline void ew_lookup_policy(void *rules,
					const struct ew_rule *settings,
					const struct ew_packet *pkt,
					struct ew_rule_key *key,
					struct ew_decision *d)
{
	struct ew_rule *rule = ew_find_rule(rules, settings, pkt, key);

	d->reason = EW_REASON_NO_RULE;
	if (rule)
		ew_match_ports(rule, pkt, d);
}

/* ew_link_need allows what an uplink needs to work at all: neighbour
 * discovery, multicast listener reports and DHCP client messages. */
static __always_inline int ew_link_need(const struct ew_packet *pkt)
{
	if (pkt->later_fragment)
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

	ew_frag_key_for(&key, pkt);
	bpf_map_update_elem(&ew_frags, &key, &v, BPF_ANY);
}

/* ew_decide judges a parsed IP packet against the policy in rules. */
static __always_inline void ew_decide(void *rules,
				      const struct ew_rule *settings,
				      const struct ew_packet *pkt,
				      struct ew_decision *d)
{
	struct ew_rule_key key = {};

	d->reason = ew_link_need(pkt);
	if (d->reason != EW_REASON_UNKNOWN)
		return;

	if (pkt->later_fragment) {
		ew_follow_fragment(pkt, d);
		return;
	}

	d->reason = EW_REASON_NO_RULE;
	if (pkt->has_ports)
		ew_lookup_policy(rules, settings, pkt, &key, d);

	if (pkt->fragment)
		ew_remember_fragment(pkt, d);
}

#endif
