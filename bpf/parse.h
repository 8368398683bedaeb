/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Header parsing with a cursor. Every step checks the header against
 * data_end before reading it; a header that does not fit is "malformed".
 */
#ifndef EW_PARSE_H
#define EW_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "reasons.h"

/* IPv6 extension headers walked before giving up. */
#define EW_MAX_EXT_HEADERS 8
/* VLAN tags (802.1Q, 802.1ad) skipped before the network header. */
#define EW_MAX_VLAN_TAGS 2

#define EW_IP_MF 0x2000
#define EW_IP_OFFSET 0x1fff
#define EW_IP6_OFFSET 0xfff8
#define EW_IP6_MF 0x0001

struct ew_cursor {
	void *pos;
	void *end;
};

/* What the verdict needs to know of a packet. Addresses in network order;
 * IPv4 uses word 0. Ports are in host order and only valid if has_ports. */
struct ew_packet {
	__u8 family;
	__u8 proto;
	__u8 has_ports;
	__u8 fragment;       /* part of a fragmented datagram */
	__u8 later_fragment; /* not the first fragment: no L4 header */
	__u8 icmp_type;
	__u16 sport;
	__u16 dport;
	__u8 tcp_flags;
	__u8 forwarded;      /* did not start on this machine */
	__u8 hop_limit;      /* IPv6 hop limit, IPv4 TTL */
	__u8 pad2;
	__u16 ip_payload;    /* IPv6 payload length */
	__u32 frag_id;
	__u32 pad3;
	/* Aligned so that IPv6 addresses can be read as two 64-bit words. */
	__u32 saddr[4] __attribute__((aligned(8)));
	__u32 daddr[4] __attribute__((aligned(8)));
};

struct ew_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct ew_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

struct ew_ipv6_opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

/* ew_take returns a pointer to size bytes at the cursor and advances it, or
 * NULL when the packet is shorter. */
static __always_inline void *ew_take(struct ew_cursor *c, __u32 size)
{
	void *hdr = c->pos;

	if (hdr + size > c->end)
		return NULL;
	c->pos = hdr + size;
	return hdr;
}

/* ew_parse_eth skips the Ethernet header and up to EW_MAX_VLAN_TAGS tags and
 * stores the ethertype of what follows (host order). */
static __always_inline int ew_parse_eth(struct ew_cursor *c, __u16 *proto)
{
	struct ethhdr *eth = ew_take(c, sizeof(*eth));
	__u16 type;

	if (!eth)
		return EW_REASON_MALFORMED;
	type = bpf_ntohs(eth->h_proto);

#pragma unroll
	for (int i = 0; i < EW_MAX_VLAN_TAGS; i++) {
		struct ew_vlan_hdr *vlan;

		if (type != ETH_P_8021Q && type != ETH_P_8021AD)
			break;
		vlan = ew_take(c, sizeof(*vlan));
		if (!vlan)
			return EW_REASON_MALFORMED;
		type = bpf_ntohs(vlan->proto);
	}
	if (type == ETH_P_8021Q || type == ETH_P_8021AD)
		return EW_REASON_HEADER_CHAIN_TOO_LONG;

	*proto = type;
	return EW_REASON_UNKNOWN;
}

/* ew_parse_l4 reads the transport fields the policy looks at. */
static __always_inline int ew_parse_l4(struct ew_cursor *c,
				       struct ew_packet *pkt)
{
	if (pkt->later_fragment)
		return EW_REASON_UNKNOWN;

	switch (pkt->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *tcp = ew_take(c, sizeof(*tcp));

		if (!tcp || tcp->doff < 5)
			return EW_REASON_MALFORMED;
		pkt->sport = bpf_ntohs(tcp->source);
		pkt->dport = bpf_ntohs(tcp->dest);
		pkt->tcp_flags = ((__u8 *)tcp)[13];
		pkt->has_ports = 1;
		return EW_REASON_UNKNOWN;
	}
	case IPPROTO_UDP: {
		struct udphdr *udp = ew_take(c, sizeof(*udp));

		if (!udp)
			return EW_REASON_MALFORMED;
		pkt->sport = bpf_ntohs(udp->source);
		pkt->dport = bpf_ntohs(udp->dest);
		pkt->has_ports = 1;
		return EW_REASON_UNKNOWN;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 *type = ew_take(c, 4);

		if (!type)
			return EW_REASON_MALFORMED;
		pkt->icmp_type = *type;
		return EW_REASON_UNKNOWN;
	}
	}
	return EW_REASON_UNKNOWN;
}

/* ew_parse_ipv4 reads an IPv4 header, options included. A header length
 * below five words is malformed. */
static __always_inline int ew_parse_ipv4(struct ew_cursor *c,
					 struct ew_packet *pkt)
{
	struct iphdr *ip = ew_take(c, sizeof(*ip));
	__u32 hlen;
	__u16 frag;

	if (!ip || ip->version != 4 || ip->ihl < 5)
		return EW_REASON_MALFORMED;

	/* Skip options: re-check the bound for the variable part. The mask
	 * changes nothing (ihl is 4 bits) but tells the verifier the range. */
	hlen = (ip->ihl * 4 - sizeof(*ip)) & 0x3f;
	if (!ew_take(c, hlen))
		return EW_REASON_MALFORMED;

	pkt->family = 4;
	pkt->hop_limit = ip->ttl;
	pkt->proto = ip->protocol;
	pkt->saddr[0] = ip->saddr;
	pkt->daddr[0] = ip->daddr;

	frag = bpf_ntohs(ip->frag_off);
	if (frag & (EW_IP_MF | EW_IP_OFFSET)) {
		pkt->fragment = 1;
		pkt->later_fragment = (frag & EW_IP_OFFSET) != 0;
		pkt->frag_id = bpf_ntohs(ip->id);
	}
	return ew_parse_l4(c, pkt);
}

/* ew_is_ipv6_ext tells whether nexthdr is an extension header we walk. */
static __always_inline int ew_is_ipv6_ext(__u8 nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_DSTOPTS:
	case IPPROTO_FRAGMENT:
	case IPPROTO_AH:
		return 1;
	}
	return 0;
}

/* ew_skip_ipv6_ext steps over one extension header and returns the next
 * header's number, or a negative reason. */
static __always_inline int ew_skip_ipv6_ext(struct ew_cursor *c, __u8 nexthdr,
					    struct ew_packet *pkt)
{
	struct ew_ipv6_opt_hdr *opt;
	__u32 len;

	if (nexthdr == IPPROTO_FRAGMENT) {
		struct ew_ipv6_frag_hdr *fh = ew_take(c, sizeof(*fh));
		__u16 off;

		if (!fh)
			return -EW_REASON_MALFORMED;
		off = bpf_ntohs(fh->frag_off);
		pkt->fragment = 1;
		pkt->later_fragment = (off & EW_IP6_OFFSET) != 0;
		pkt->frag_id = bpf_ntohl(fh->id);
		return fh->nexthdr;
	}

	opt = c->pos;
	if ((void *)(opt + 1) > c->end)
		return -EW_REASON_MALFORMED;
	if (nexthdr == IPPROTO_AH)
		len = ((__u32)opt->hdrlen + 2) * 4;
	else
		len = ((__u32)opt->hdrlen + 1) * 8;
	nexthdr = opt->nexthdr;
	if (!ew_take(c, len))
		return -EW_REASON_MALFORMED;
	return nexthdr;
}

/* ew_parse_ipv6 reads an IPv6 header and walks at most EW_MAX_EXT_HEADERS
 * extension headers to the transport header. */
static __always_inline int ew_parse_ipv6(struct ew_cursor *c,
					 struct ew_packet *pkt)
{
	struct ipv6hdr *ip6 = ew_take(c, sizeof(*ip6));
	int next;

	if (!ip6 || ip6->version != 6)
		return EW_REASON_MALFORMED;

	pkt->family = 6;
	pkt->hop_limit = ip6->hop_limit;
	pkt->ip_payload = bpf_ntohs(ip6->payload_len);
	__builtin_memcpy(pkt->saddr, &ip6->saddr, 16);
	__builtin_memcpy(pkt->daddr, &ip6->daddr, 16);
	next = ip6->nexthdr;

	for (int i = 0; i < EW_MAX_EXT_HEADERS; i++) {
		if (!ew_is_ipv6_ext(next))
			break;
		/* One fragment header per packet; a second is an attack. */
		if (next == IPPROTO_FRAGMENT && pkt->fragment)
			return EW_REASON_MALFORMED;
		next = ew_skip_ipv6_ext(c, next, pkt);
		if (next < 0)
			return -next;
		/* After a later fragment's header comes payload, not headers:
		 * never read it as such. */
		if (pkt->later_fragment)
			break;
	}
	if (!pkt->later_fragment && ew_is_ipv6_ext(next))
		return EW_REASON_HEADER_CHAIN_TOO_LONG;

	pkt->proto = next;
	return ew_parse_l4(c, pkt);
}

/* ew_plain_l4 reads the ports of a TCP or UDP header at l4 for
 * ew_parse_plain; it returns 0 for any other protocol, a header that does
 * not fit, and a TCP data offset below five words (malformed: ew_parse
 * decides that). */
static __always_inline int ew_plain_l4(void *l4, void *end, __u8 proto,
				       struct ew_packet *pkt)
{
	struct tcphdr *tcp = l4;
	struct udphdr *udp = l4;

	if (proto == IPPROTO_TCP) {
		if ((void *)(tcp + 1) > end || tcp->doff < 5)
			return 0;
		pkt->tcp_flags = ((__u8 *)tcp)[13];
	} else if (proto == IPPROTO_UDP) {
		if ((void *)(udp + 1) > end)
			return 0;
	} else {
		return 0;
	}
	pkt->sport = bpf_ntohs(udp->source);
	pkt->dport = bpf_ntohs(udp->dest);
	return 1;
}

/* ew_plain_ipv4 is ew_parse_plain for an IPv4 header at ip: five words
 * long (no options), not a fragment. */
static __always_inline int ew_plain_ipv4(struct iphdr *ip, void *end,
					 struct ew_packet *pkt)
{
	if ((void *)(ip + 1) > end || *(__u8 *)ip != 0x45)
		return 0;
	if (ip->frag_off & bpf_htons(EW_IP_MF | EW_IP_OFFSET))
		return 0;

	pkt->family = 4;
	pkt->proto = ip->protocol;
	pkt->hop_limit = ip->ttl;
	pkt->saddr[0] = ip->saddr;
	pkt->daddr[0] = ip->daddr;
	return ew_plain_l4(ip + 1, end, ip->protocol, pkt);
}

/* ew_copy_addr6 copies an IPv6 address from a packet into a struct
 * ew_packet as two 64-bit words (the packet's copy need not be aligned;
 * the verifier allows that for packet data on machines without alignment
 * traps). */
static __always_inline void ew_copy_addr6(__u32 *dst, const void *src)
{
	const __u64 *from = src;
	__u64 *to = (__u64 *)dst;

	to[0] = from[0];
	to[1] = from[1];
}

/* ew_plain_ipv6 is ew_parse_plain for an IPv6 header at ip6 that no
 * extension header follows. */
static __always_inline int ew_plain_ipv6(struct ipv6hdr *ip6, void *end,
					 struct ew_packet *pkt)
{
	if ((void *)(ip6 + 1) > end || ip6->version != 6)
		return 0;

	pkt->family = 6;
	pkt->proto = ip6->nexthdr;
	pkt->hop_limit = ip6->hop_limit;
	pkt->ip_payload = bpf_ntohs(ip6->payload_len);
	ew_copy_addr6(pkt->saddr, &ip6->saddr);
	ew_copy_addr6(pkt->daddr, &ip6->daddr);
	return ew_plain_l4(ip6 + 1, end, ip6->nexthdr, pkt);
}

/* ew_parse_plain parses the packets most of an uplink carries, in one pass
 * with one bound check per header: no VLAN tag, IPv4 without options or
 * IPv6 without extension headers, not a fragment, TCP or UDP. It fills pkt
 * (zeroed by the caller) as ew_parse would and returns 1, or returns 0 for
 * any other packet, which ew_parse then reads from the start; so does a
 * packet whose headers are not all in the linear area. l3 is set for
 * devices whose packets start at the network header. */
static __always_inline int ew_parse_plain(void *data, void *end, int l3,
					  struct ew_packet *pkt)
{
	struct ethhdr *eth = data;
	void *ip = data;
	__u16 type;

	if (!l3) {
		if ((void *)(eth + 1) > end)
			return 0;
		ip = eth + 1;
		type = eth->h_proto;
	} else {
		if (ip + 1 > end)
			return 0;
		type = (*(__u8 *)ip >> 4) == 6 ? bpf_htons(ETH_P_IPV6) :
						 bpf_htons(ETH_P_IP);
	}

	pkt->has_ports = 1;
	if (type == bpf_htons(ETH_P_IP))
		return ew_plain_ipv4(ip, end, pkt);
	if (type == bpf_htons(ETH_P_IPV6))
		return ew_plain_ipv6(ip, end, pkt);
	return 0;
}

/* Transport tuple of the packet an ICMP error quotes: the packet that
 * left, so local side first. */
struct ew_icmp_inner {
	__u8 valid;
	__u8 family;
	__u8 proto;
	__u8 pad;
	__u16 sport;
	__u16 dport;
	__u32 saddr[4];
	__u32 daddr[4];
};

#define EW_TCP_FIN 0x01
#define EW_TCP_SYN 0x02
#define EW_TCP_RST 0x04
#define EW_TCP_ACK 0x10

/* ew_is_icmp_error tells whether the packet is an ICMP or ICMPv6 error,
 * which quotes the header of the packet it is about. */
static __always_inline int ew_is_icmp_error(const struct ew_packet *pkt)
{
	if (pkt->later_fragment)
		return 0;
	if (pkt->family == 4 && pkt->proto == IPPROTO_ICMP)
		return pkt->icmp_type == 3 || pkt->icmp_type == 11 ||
		       pkt->icmp_type == 12;
	if (pkt->family == 6 && pkt->proto == IPPROTO_ICMPV6)
		return pkt->icmp_type >= 1 && pkt->icmp_type <= 4;
	return 0;
}

/* ew_parse_icmp_inner reads the quoted header of an ICMP error; the cursor
 * stands after the first four bytes of the ICMP header. Only a quoted TCP
 * or UDP header right after the IP header is understood (no IPv6
 * extension headers); anything else leaves inner->valid zero. */
static __always_inline void ew_parse_icmp_inner(struct ew_cursor *c,
						const struct ew_packet *pkt,
						struct ew_icmp_inner *inner)
{
	__u16 *ports;

	if (!ew_take(c, 4)) /* rest of the ICMP header */
		return;

	if (pkt->family == 4) {
		struct iphdr *ip = ew_take(c, sizeof(*ip));
		__u32 opts;

		if (!ip || ip->version != 4 || ip->ihl < 5)
			return;
		opts = (ip->ihl * 4 - sizeof(*ip)) & 0x3f;
		if (!ew_take(c, opts))
			return;
		inner->proto = ip->protocol;
		inner->saddr[0] = ip->saddr;
		inner->daddr[0] = ip->daddr;
	} else {
		struct ipv6hdr *ip6 = ew_take(c, sizeof(*ip6));

		if (!ip6 || ip6->version != 6)
			return;
		inner->proto = ip6->nexthdr;
		__builtin_memcpy(inner->saddr, &ip6->saddr, 16);
		__builtin_memcpy(inner->daddr, &ip6->daddr, 16);
	}

	if (inner->proto != IPPROTO_TCP && inner->proto != IPPROTO_UDP)
		return;
	ports = ew_take(c, 4);
	if (!ports)
		return;
	inner->sport = bpf_ntohs(ports[0]);
	inner->dport = bpf_ntohs(ports[1]);
	inner->family = pkt->family;
	inner->valid = 1;
}

/* ew_parse_ip parses the network header that starts at the cursor; proto is
 * the ethertype, or 0 to take the version from the header itself (layer-3
 * devices). */
static __always_inline int ew_parse_ip(struct ew_cursor *c, __u16 proto,
				       struct ew_packet *pkt)
{
	if (proto == 0) {
		__u8 *first = c->pos;

		if ((void *)(first + 1) > c->end)
			return EW_REASON_MALFORMED;
		proto = (*first >> 4) == 6 ? ETH_P_IPV6 : ETH_P_IP;
	}

	if (proto == ETH_P_IP)
		return ew_parse_ipv4(c, pkt);
	if (proto == ETH_P_IPV6)
		return ew_parse_ipv6(c, pkt);
	return EW_REASON_UNSUPPORTED_PROTOCOL;
}

#endif
