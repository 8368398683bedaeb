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

/* ew_bucket returns the bucket of table that hash h (home or stash) picks
 * for the masked address hi, lo at the family's i-th prefix length (see
 * struct ew_table_hash), or NULL past the table's end. */
static __always_inline struct ew_bucket *
ew_bucket(void *table, const struct ew_table_hash *h, __u64 hi, __u64 lo,
	  int i)
{
	__u64 mixed = (hi ^ hi >> 32) * h->mul[0] + (lo ^ lo >> 32) * h->mul[1] +
		      h->salt[i];
	__u32 idx = h->first + (__u32)(mixed >> h->shift);

	return bpf_map_lookup_elem(table, &idx);
}

/* ew_match looks in bucket b for the masked address hi, lo of length
 * want - 1: it returns the slot's rule word and stores its first port
 * range, or returns 0. */
static __always_inline __u32 ew_match(const struct ew_bucket *b, __u64 hi,
				      __u64 lo, __u32 want,
				      struct ew_port_range *first)
{
#pragma unroll
	for (int i = 0; i < EW_BUCKET_SLOTS; i++) {
		if (b->hi[i] == hi && b->lo[i] == lo &&
		    b->rule[i] >> EW_RULE_LEN_SHIFT == want) {
			*first = b->first[i];
			return b->rule[i];
		}
	}
	return 0;
}

/* ew_probe looks the destination daddr (16 bytes, 8-byte aligned: see
 * struct ew_packet) up at the family's i-th prefix length: in its home
 * bucket, and in the stash when that bucket overflowed. It returns the
 * rule word and stores the first port range, or returns 0. */
static __always_inline __u32 ew_probe(void *table,
				      const struct ew_family_policy *f,
				      const __u32 *daddr, int i,
				      struct ew_port_range *first)
{
	const __u64 *words = (const __u64 *)daddr;
	__u64 hi = words[0] & f->masks[i][0];
	__u64 lo = words[1] & f->masks[i][1];
	__u32 want = f->lens[i] + 1;
	struct ew_bucket *b;
	__u32 rule;

	b = ew_bucket(table, &f->hash[0], hi, lo, i);
	if (!b)
		return 0;
	rule = ew_match(b, hi, lo, want, first);
	if (rule || !b->more)
		return rule;

	b = ew_bucket(table, &f->hash[1], hi, lo, i);
	if (!b)
		return 0;
	return ew_match(b, hi, lo, want, first);
}

/* ew_family_of is the index of the packet's address family. */
static __always_inline __u32 ew_family_of(const struct ew_packet *pkt)
{
	return pkt->family == 6 ? EW_FAMILY_IPV6 : EW_FAMILY_IPV4;
}

/* ew_table returns the table of the packet's family in slot, or NULL. */
static __always_inline void *ew_table(__u32 slot, __u32 family)
{
	__u32 index = EW_FAMILIES * slot + family;

	return bpf_map_lookup_elem(&ew_tables, &index);
}

/* ew_find_shorter returns the rule word of the longest prefix containing
 * the destination among the policy's second and later prefix lengths, and
 * stores its first port range, or returns 0: one probe per length, longest
 * first. A global function, checked once: a probe per length inlined
 * everywhere would cost the verifier far more than the call costs the
 * packets of a policy with several lengths. */
__noinline __u32 ew_find_shorter(const struct ew_settings *s, __u32 slot,
				 const struct ew_packet *pkt,
				 struct ew_port_range *first)
{
	const struct ew_family_policy *f;
	void *table;
	__u32 rule;

	if (!s || !pkt || !first)
		return 0;
	f = &s->family[ew_family_of(pkt)];
	table = ew_table(slot, ew_family_of(pkt));
	for (int i = 1; table && i < EW_MAX_PREFIX_LENS; i++) {
		if (i >= f->nlens)
			break;
		rule = ew_probe(table, f, pkt->daddr, i, first);
		if (rule)
			return rule;
	}
	return 0;
}

/* ew_find returns the rule word of the longest prefix of the policy in
 * slot that contains the packet's destination and stores its first port
 * range, or returns 0. The longest length is probed inline: a policy of
 * hosts, or of one prefix length, needs no call. */
static __always_inline __u32 ew_find(const struct ew_settings *s, __u32 slot,
				     const struct ew_packet *pkt,
				     struct ew_port_range *first)
{
	const struct ew_family_policy *f = &s->family[ew_family_of(pkt)];
	void *table;
	__u32 rule;

	if (f->nlens == 0)
		return 0;
	table = ew_table(slot, ew_family_of(pkt));
	if (!table)
		return 0;
	rule = ew_probe(table, f, pkt->daddr, 0, first);
	if (rule || f->nlens < 2)
		return rule;
	return ew_find_shorter(s, slot, pkt, first);
}

/* ew_ruleset returns the port ranges a rule word grants. */
static __always_inline struct ew_rule *ew_ruleset(__u32 slot, __u32 rule)
{
	__u32 index = rule & EW_RULESET_MASK;
	void *rulesets = bpf_map_lookup_elem(&ew_rulesets, &slot);

	if (!rulesets)
		return NULL;
	return bpf_map_lookup_elem(rulesets, &index);
}

/* ew_in_range tells whether range r grants the packet's protocol and
 * destination port. */
static __always_inline int ew_in_range(const struct ew_port_range *r,
				       const struct ew_packet *pkt)
{
	return r->proto == pkt->proto && pkt->dport >= r->first &&
	       pkt->dport <= r->last;
}

/* ew_granted records in d that range r let the packet through. */
static __always_inline void ew_granted(const struct ew_port_range *r,
				       struct ew_decision *d)
{
	d->endpoint = r->endpoint;
	d->reason = r->endpoint == EW_ENDPOINT_PROXY ? EW_REASON_PROXY :
						       EW_REASON_ENDPOINT;
}

/* ew_match_ports looks for the packet's protocol and port among the ranges
 * of the prefix that matched. They are those of every endpoint containing
 * the prefix, so a miss here is final. */
static __always_inline void ew_match_ports(const struct ew_rule *rule,
				      const struct ew_packet *pkt,
				      struct ew_decision *d)
{
	for (int i = 0; i < EW_MAX_RANGES; i++) {
		const struct ew_port_range *r = &rule->ranges[i];

		if (i >= rule->nranges)
			break;
		if (ew_in_range(r, pkt)) {
			ew_granted(r, d);
			return;
		}
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
		if (ew_in_range(r, pkt)) {
			d->reason = EW_REASON_LEARNED;
			d->endpoint = l->name;
			return;
		}
	}
}

/* ew_lookup_learned looks for the destination among learned addresses.
 * Not inlined, like ew_flow_record. */
static __noinline void ew_lookup_learned(const struct ew_packet *pkt,
					      struct ew_decision *d)
{
	struct ew_learned_key key = { .family = pkt->family };
	struct ew_learned *l;

	__builtin_memcpy(key.addr, pkt->daddr, sizeof(key.addr));
	l = bpf_map_lookup_elem(&ew_learned_dests, &key);
	if (l)
		ew_match_learned(l, pkt, d);
}

/* ew_lookup_policy decides a packet with ports by the endpoints and the
 * proxy of the policy in slot. The first range of the matching prefix
 * comes with it from the table; only a packet that range does not grant
 * looks at the others. */
static __always_inline void ew_lookup_policy(const struct ew_settings *s,
					__u32 slot,
					const struct ew_packet *pkt,
					struct ew_decision *d)
{
	struct ew_port_range first = {};
	struct ew_rule *ranges;
	__u32 rule;

	d->reason = EW_REASON_NO_RULE;
	rule = ew_find(s, slot, pkt, &first);

	if (rule && ew_in_range(&first, pkt)) {
		ew_granted(&first, d);
	} else if (rule & EW_RULE_MORE_RANGES) {
		ranges = ew_ruleset(slot, rule);
		if (ranges)
			ew_match_ports(ranges, pkt, d);
	}

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
		if (ew_in_range(r, pkt))
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
		ew_lookup_policy(s, slot, pkt, d);

	if (pkt->fragment)
		ew_remember_fragment(pkt, d);
}

#endif
