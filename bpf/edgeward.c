//go:build ignore
/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Edgeward's data plane:
 *
 *   uplink egress   tc_egress_eth, tc_egress_l3   endpoints, proxy, link needs
 *   uplink ingress  xdp_uplink, tc_ingress_l3     replies of allowed flows
 *   LAN ingress     xdp_lan                       by where the FIB routes it
 *   socket guard    guard_sockopt (cgroup)        sockets that skip tc egress
 *
 * All of them count every verdict under its reason in ew_counters.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "flow.h"
#include "maps.h"
#include "parse.h"
#include "policy.h"
#include "reasons.h"
#include "sockguard.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Bytes pulled into the linear area when headers are not there yet. */
#define EW_PULL_BYTES 256

/* ew_count adds one packet of len bytes to the cell (hook, verdict,
 * reason). */
static __always_inline void ew_count(enum ew_hook hook,
				     enum ew_verdict verdict,
				     enum ew_reason reason, __u64 len)
{
	__u32 slot = (hook * EW_VERDICT_MAX + verdict) * EW_REASON_MAX + reason;
	struct ew_counter *c;

	if (ew_explain)
		return;
	c = bpf_map_lookup_elem(&ew_counters, &slot);
	if (!c)
		return;
	c->packets++;
	c->bytes += len;
}

/* ew_event_allowed counts an event against this CPU's budget for the
 * current window and tells whether it fits. */
static __always_inline int ew_event_allowed(void)
{
	struct ew_event_budget *b;
	__u32 zero = 0;
	__u64 window;

	b = bpf_map_lookup_elem(&ew_event_budgets, &zero);
	if (!b)
		return 0;
	window = bpf_jiffies64() >> EW_EVENT_WINDOW_SHIFT;
	if (b->window != window) {
		b->window = window;
		b->sent = 0;
	}
	if (b->sent >= EW_EVENT_BUDGET)
		return 0;
	b->sent++;
	return 1;
}

static __always_inline void ew_count_loss(__u32 cause)
{
	__u64 *n = bpf_map_lookup_elem(&ew_event_losses, &cause);

	if (n)
		*n += 1;
}

/* ew_event_fill copies what a deny event tells of the packet and the
 * decision. Not inlined: its parameter puts struct ew_event into BTF for
 * the generated Go bindings. */
static __noinline void ew_event_fill(struct ew_event *e,
				     const struct ew_decision *d,
				     const struct ew_packet *pkt)
{
	if (!e || !d || !pkt)
		return;
	e->time_ns = bpf_ktime_get_boot_ns();
	e->generation = d->generation;
	e->reason = d->reason;
	e->family = pkt->family;
	e->proto = pkt->proto;
	e->pad = 0;
	e->sport = pkt->sport;
	e->dport = pkt->dport;
	e->pad2 = 0;
	__builtin_memcpy(e->saddr, pkt->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, pkt->daddr, sizeof(e->daddr));
}

/* ew_emit sends a deny event that fits the budget (see ew_report_deny);
 * an event the ring has no room for is counted. Not inlined: one copy
 * serves every hook, and it runs for a few hundred packets a second. */
static __noinline void ew_emit(enum ew_hook hook, enum ew_verdict verdict,
			       const struct ew_decision *d,
			       const struct ew_packet *pkt, __u32 ifindex)
{
	struct ew_event *e;

	if (!d || !pkt)
		return;
	e = bpf_ringbuf_reserve(&ew_events, sizeof(*e), 0);
	if (!e) {
		ew_count_loss(EW_LOSS_RING_FULL);
		return;
	}

	e->hook = hook;
	e->verdict = verdict;
	e->ifindex = ifindex;
	ew_event_fill(e, d, pkt);
	bpf_ringbuf_submit(e, 0);
}

/* ew_report_deny sends a deny event within this CPU's budget and counts
 * every event it may not send. The budget check is inlined: in a deny
 * storm nearly every denied packet ends there, and a call would cost it
 * more than the check. */
static __always_inline void ew_report_deny(enum ew_hook hook,
					   enum ew_verdict verdict,
					   const struct ew_decision *d,
					   const struct ew_packet *pkt,
					   __u32 ifindex)
{
	if (ew_explain)
		return;
	if (!ew_event_allowed()) {
		ew_count_loss(EW_LOSS_RATE_LIMITED);
		return;
	}
	ew_emit(hook, verdict, d, pkt, ifindex);
}

/* ew_explained_as stores the decision of an explained packet (explain
 * mode only, see ew_explain). */
static __always_inline void ew_explained_as(enum ew_hook hook,
					    enum ew_verdict verdict,
					    const struct ew_decision *d)
{
	struct ew_explanation *e;
	__u32 zero = 0;

	e = bpf_map_lookup_elem(&ew_explained, &zero);
	if (!e)
		return;
	e->generation = d->generation;
	e->endpoint = d->endpoint;
	e->hook = hook;
	e->verdict = verdict;
	e->reason = d->reason;
	e->learned_expired = d->learned_expired;
	e->decided = 1;
}

/* ew_account counts the verdict of a packet of len bytes; in explain mode
 * it records the decision instead. */
static __always_inline void ew_account(enum ew_hook hook,
				       enum ew_verdict verdict,
				       const struct ew_decision *d, __u64 len)
{
	if (ew_explain) {
		ew_explained_as(hook, verdict, d);
		return;
	}
	ew_count(hook, verdict, d->reason, len);
}

/* ew_verdict turns a reason into a verdict under the policy's mode. A
 * packet no step decided on (EW_REASON_UNKNOWN) is denied: fail closed. */
static __always_inline enum ew_verdict ew_verdict(__u8 reason, __u8 mode)
{
	if (reason != EW_REASON_UNKNOWN && reason < EW_REASON_FIRST_DENY)
		return EW_VERDICT_PASS;
	return mode == EW_MODE_AUDIT ? EW_VERDICT_AUDIT : EW_VERDICT_DROP;
}

/* ew_linearize makes sure the first bytes of the packet are in the linear
 * area, so that direct packet access sees every header we parse. */
static __always_inline void ew_linearize(struct __sk_buff *skb)
{
	__u32 want = skb->len < EW_PULL_BYTES ? skb->len : EW_PULL_BYTES;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (data + want > end)
		bpf_skb_pull_data(skb, want);
}

/* ew_active_policy returns the settings of the active policy and stores
 * its slot, or returns NULL when no policy is applied. The slot is read
 * once per packet, so everything a packet is judged by comes from one
 * policy. */
static __always_inline struct ew_settings *ew_active_policy(__u32 *slot)
{
	struct ew_settings *s;
	__u32 zero = 0;
	__u32 *active;

	active = bpf_map_lookup_elem(&ew_slot, &zero);
	if (!active)
		return NULL;
	*slot = *active;
	s = bpf_map_lookup_elem(&ew_policies, slot);
	if (!s || s->generation == 0)
		return NULL;
	return s;
}

/* ew_policy_for fetches the active policy for decision d and stamps its
 * generation; without a policy it records no_policy (unless parsing has
 * decided already) and returns NULL. */
static __always_inline struct ew_settings *ew_policy_for(struct ew_decision *d,
							 __u32 *slot)
{
	struct ew_settings *s = ew_active_policy(slot);

	if (!s) {
		d->reason = d->reason ?: EW_REASON_NO_POLICY;
		return NULL;
	}
	d->generation = s->generation;
	return s;
}

/*
 * The ew_judge_* functions complete a decision: when parsing already decided
 * (d->reason set), they only look up the mode; otherwise they judge the
 * packet against the active policy. They return the policy's mode.
 *
 * They are global functions, so the verifier checks each once for any
 * packet instead of once per parse path: that keeps verification far below
 * its limits on older kernels.
 */

/* ew_fib_addresses fills a FIB query with the packet's family and
 * addresses, asked on the device ifindex. */
static __always_inline void ew_fib_addresses(struct bpf_fib_lookup *fib,
					     const struct ew_packet *pkt,
					     __u32 ifindex)
{
	fib->family = pkt->family == 4 ? 2 /* AF_INET */ : 10 /* AF_INET6 */;
	fib->ifindex = ifindex;
	if (pkt->family == 4) {
		fib->ipv4_src = pkt->saddr[0];
		fib->ipv4_dst = pkt->daddr[0];
	} else {
		__builtin_memcpy(fib->ipv6_src, pkt->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, pkt->daddr, 16);
	}
}

/* ew_on_link asks the FIB whether the destination of a packet leaving on
 * skb's device is a neighbour there (no router in between). */
static __always_inline int ew_on_link(struct __sk_buff *skb,
				      const struct ew_packet *pkt)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	ew_fib_addresses(&fib, pkt, skb->ifindex);

	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return 0;
	/* With a router in between, the lookup hands back its address. */
	if (pkt->family == 4)
		return fib.ipv4_dst == pkt->daddr[0];
	return fib.ipv6_dst[0] == pkt->daddr[0] &&
	       fib.ipv6_dst[1] == pkt->daddr[1] &&
	       fib.ipv6_dst[2] == pkt->daddr[2] &&
	       fib.ipv6_dst[3] == pkt->daddr[3];
}

/* ew_neighbour_message tells whether a unicast packet is a plain neighbour
 * solicitation or advertisement: hop limit 255 (RFC 4861; a router would
 * have lowered it, and receivers drop less) and no more than a target and
 * one link-layer option. The FIB check of ew_on_link misses some of these
 * on older kernels; this keeps address resolution working while what the
 * exception can carry stays tiny. */
static __always_inline int ew_neighbour_message(const struct ew_packet *pkt)
{
	return pkt->family == 6 && pkt->proto == IPPROTO_ICMPV6 &&
	       (pkt->icmp_type == 135 || pkt->icmp_type == 136) &&
	       pkt->hop_limit == 255 && pkt->ip_payload <= 32;
}

/* ew_unguarded_dns tells whether a packet is DNS (to port 53, UDP or TCP)
 * that carries no guard mark: neither the guard sent it nor its queue let
 * it through. With transparent DNS, such a packet went around the
 * netfilter rules (flushed, or bypassed) and may not leave. */
static __always_inline int ew_unguarded_dns(const struct __sk_buff *skb,
					    const struct ew_packet *pkt)
{
	if (!pkt->has_ports || pkt->dport != 53)
		return 0;
	if (pkt->proto != IPPROTO_UDP && pkt->proto != IPPROTO_TCP)
		return 0;
	return (skb->mark & EW_GUARD_MASK) != EW_GUARD_MARK;
}

/* ew_egress_finish completes a decision on a packet leaving on an uplink:
 * a flow that a learned destination opened outlives the entry, DNS around
 * the guard is refused, and what is allowed is recorded as a flow. */
static __always_inline void ew_egress_finish(struct __sk_buff *skb,
					     const struct ew_settings *s,
					     const struct ew_packet *pkt,
					     struct ew_decision *d)
{
	if (d->reason == EW_REASON_NO_RULE && d->learned_expired)
		ew_flow_continues(pkt, d);
	if (s->dns_gate && d->reason < EW_REASON_FIRST_DENY &&
	    ew_unguarded_dns(skb, pkt))
		d->reason = EW_REASON_DNS_UNGUARDED;
	if (d->reason < EW_REASON_FIRST_DENY)
		ew_flow_track(pkt, d);
}

/* ew_judge_egress judges a packet leaving on an uplink and records the
 * flows it allows. An ICMP error the gateway sends about a packet of an
 * allowed flow (path MTU discovery for traffic it forwards) may leave;
 * inner is the header it quotes. */
__noinline int ew_judge_egress(struct __sk_buff *skb, struct ew_packet *pkt,
			       struct ew_icmp_inner *inner,
			       struct ew_decision *d)
{
	int on_link = 0, need;
	struct ew_settings *s;
	__u32 slot = 0;

	if (!skb || !pkt || !inner || !d)
		return EW_MODE_ENFORCE;
	s = ew_policy_for(d, &slot);
	if (!s)
		return EW_MODE_ENFORCE;
	if (d->reason != EW_REASON_UNKNOWN)
		return s->mode;

	if (ew_is_icmp_error(pkt) && ew_flow_quoted(pkt, inner, 0)) {
		d->reason = EW_REASON_ICMP_ERROR;
		return s->mode;
	}
	/* Only a link need that is not link-scoped costs a FIB lookup. */
	need = ew_link_need(pkt);
	if (need != EW_REASON_UNKNOWN && !pkt->forwarded && !ew_link_scope(pkt))
		on_link = ew_on_link(skb, pkt) || ew_neighbour_message(pkt);

	ew_decide(s, slot, pkt, need, on_link, d);
	ew_egress_finish(skb, s, pkt, d);
	return s->mode;
}

/* ew_judge_plain judges a plain packet leaving on an uplink: one that
 * ew_parse_plain read and no link need covers, which needs nothing but the
 * policy's lookup. Most of an uplink's packets are plain.
 * ew_judge_egress comes to the same decision by the same steps, but the
 * call to a global function costs more than these steps; kept apart, the
 * rest still lets the verifier check that function once. */
static __always_inline int ew_judge_plain(struct __sk_buff *skb,
					  const struct ew_packet *pkt,
					  struct ew_decision *d)
{
	struct ew_settings *s;
	__u32 slot = 0;

	s = ew_policy_for(d, &slot);
	if (!s)
		return EW_MODE_ENFORCE;
	ew_lookup_policy(s, slot, pkt, d);
	ew_egress_finish(skb, s, pkt, d);
	return s->mode;
}

/* ew_reverse turns an arriving packet into the flow it would belong to as
 * it left: local side first. */
static __always_inline void ew_reverse(const struct ew_packet *pkt,
				       struct ew_packet *local)
{
	*local = *pkt;
	local->sport = pkt->dport;
	local->dport = pkt->sport;
	__builtin_memcpy(local->saddr, pkt->daddr, sizeof(local->saddr));
	__builtin_memcpy(local->daddr, pkt->saddr, sizeof(local->daddr));
}

/* ew_adoptable marks a packet from an endpoint's own port that belongs to
 * no recorded flow: UDP from the VPN peer, or TCP of a connection open
 * before enforcement started (never a bare SYN: that is a new inbound
 * connection). The caller lets it in only if a local socket waits for it
 * (ew_local_socket): the policy alone would let anyone who can send from an
 * endpoint's address reach any port. */
static __always_inline void ew_adoptable(const struct ew_settings *s,
					 __u32 slot,
					 const struct ew_packet *pkt,
					 struct ew_decision *d)
{
	struct ew_decision found = {};
	struct ew_packet local;

	if (pkt->proto == IPPROTO_TCP &&
	    (pkt->tcp_flags & (EW_TCP_SYN | EW_TCP_ACK)) == EW_TCP_SYN)
		return;

	ew_reverse(pkt, &local);
	ew_lookup_policy(s, slot, &local, &found);
	if (found.reason != EW_REASON_ENDPOINT && found.reason != EW_REASON_PROXY)
		return;
	d->adoptable = 1;
	d->endpoint = found.endpoint;
}

/* ew_decide_ingress judges a packet arriving on an uplink. */
static __always_inline void ew_decide_ingress(const struct ew_settings *s,
					      __u32 slot,
					      const struct ew_packet *pkt,
					      const struct ew_icmp_inner *inner,
					      struct ew_decision *d)
{
	d->reason = ew_link_need_reply(pkt);
	if (d->reason != EW_REASON_UNKNOWN)
		return;
	if (pkt->later_fragment) {
		ew_follow_fragment(pkt, d);
		return;
	}

	d->reason = EW_REASON_UNSOLICITED;
	if (ew_is_icmp_error(pkt)) {
		if (ew_flow_quoted(pkt, inner, 1))
			d->reason = EW_REASON_ICMP_ERROR;
	} else if (pkt->has_ports) {
		if (ew_flow_reply(pkt))
			d->reason = EW_REASON_FLOW;
		else
			ew_adoptable(s, slot, pkt, d);
	}

	if (pkt->fragment)
		ew_remember_fragment(pkt, d);
}

/* ew_judge_ingress judges a packet arriving on an uplink; inner is the
 * header an ICMP error quotes. */
__noinline int ew_judge_ingress(struct ew_packet *pkt,
				struct ew_icmp_inner *inner,
				struct ew_decision *d)
{
	struct ew_settings *s;
	__u32 slot = 0;

	if (!pkt || !inner || !d)
		return EW_MODE_ENFORCE;
	s = ew_policy_for(d, &slot);
	if (!s)
		return EW_MODE_ENFORCE;
	if (d->reason == EW_REASON_UNKNOWN)
		ew_decide_ingress(s, slot, pkt, inner, d);
	return s->mode;
}

/* ew_route asks the FIB where a packet from a LAN host would go. It
 * returns 1 with the egress interface in *ifindex, 0 for the gateway
 * itself, -1 when there is no route. */
static __always_inline int ew_route(struct xdp_md *ctx,
				    const struct ew_packet *pkt, __u32 *ifindex)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	ew_fib_addresses(&fib, pkt, ctx->ingress_ifindex);
	fib.l4_protocol = pkt->proto;
	fib.sport = bpf_htons(pkt->sport);
	fib.dport = bpf_htons(pkt->dport);

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
	case BPF_FIB_LKUP_RET_NO_NEIGH:
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		*ifindex = fib.ifindex;
		return 1;
	case BPF_FIB_LKUP_RET_NOT_FWDED:
	/* Forwarding off: nothing can be routed, only local delivery is left. */
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return 0;
	}
	return -1;
}

/* ew_decide_lan judges a packet from a LAN host by where it would go.
 * What a link needs passes only when it stays on the link or is for the
 * gateway itself. */
static __always_inline void ew_decide_lan(struct xdp_md *ctx,
					  const struct ew_settings *s,
					  __u32 slot,
					  const struct ew_packet *pkt,
					  struct ew_decision *d)
{
	__u32 ifindex = 0, *role;
	int routed, need;

	if (pkt->later_fragment) {
		ew_follow_fragment(pkt, d);
		return;
	}

	routed = ew_route(ctx, pkt, &ifindex);
	need = ew_link_need(pkt);
	if (need != EW_REASON_UNKNOWN && (routed == 0 || ew_link_scope(pkt))) {
		d->reason = need;
		return;
	}

	if (routed < 0) {
		d->reason = EW_REASON_NO_ROUTE;
	} else if (routed == 0) {
		d->reason = ew_match_service(s, pkt) ? EW_REASON_SERVICE :
						       EW_REASON_NOT_A_SERVICE;
	} else {
		role = bpf_map_lookup_elem(&ew_ifaces, &ifindex);
		if (role && *role == EW_ROLE_VPN)
			d->reason = EW_REASON_VPN;
		else if (role && *role != EW_ROLE_UPLINK)
			d->reason = EW_REASON_NOT_ROUTABLE;
		else if (pkt->has_ports)
			ew_lookup_policy(s, slot, pkt, d);
		else
			d->reason = EW_REASON_NO_RULE;
		if (d->reason == EW_REASON_NO_RULE && d->learned_expired)
			ew_flow_continues(pkt, d);
	}

	if (pkt->fragment)
		ew_remember_fragment(pkt, d);
}

/* ew_judge_lan judges a packet from a LAN host. */
__noinline int ew_judge_lan(struct xdp_md *ctx, struct ew_packet *pkt,
			    struct ew_decision *d)
{
	struct ew_settings *s;
	__u32 slot = 0;

	if (!pkt || !d)
		return EW_MODE_ENFORCE;
	s = ew_policy_for(d, &slot);
	if (!s)
		return EW_MODE_ENFORCE;
	if (d->reason == EW_REASON_UNKNOWN)
		ew_decide_lan(ctx, s, slot, pkt, d);
	return s->mode;
}

/* ew_parse parses the headers at the cursor up to the transport header.
 * l3 is set for devices whose packets start at the network header. It
 * returns a reason when parsing alone decides (ARP, malformed, ...). */
static __always_inline int ew_parse(struct ew_cursor *c, int l3,
				    struct ew_packet *pkt)
{
	__u16 proto = 0;
	int reason;

	if (!l3) {
		reason = ew_parse_eth(c, &proto);
		if (reason != EW_REASON_UNKNOWN)
			return reason;
		if (proto == ETH_P_ARP)
			return EW_REASON_ARP;
	}
	return ew_parse_ip(c, proto, pkt);
}

/* ew_plain_path turns the inline plain path on. Only a test
 * (loader/plain_test.go) loads a twin with it off, which judges every
 * packet by ew_judge_egress, to show that both paths decide alike; the
 * verifier removes the branch a constant rules out. */
volatile const __u8 ew_plain_path = 1;

/* ew_egress_slow parses from the start a packet that ew_parse_plain left
 * (pkt may hold what it read; it is cleared), pulling the headers into the
 * linear area first, and judges it by ew_judge_egress. */
static __always_inline int ew_egress_slow(struct __sk_buff *skb, int l3,
					  struct ew_packet *pkt,
					  struct ew_decision *d)
{
	struct ew_icmp_inner inner = {};
	struct ew_cursor c;

	ew_linearize(skb);
	c.pos = (void *)(long)skb->data;
	c.end = (void *)(long)skb->data_end;
	*pkt = (struct ew_packet){};
	d->reason = ew_parse(&c, l3, pkt);
	if (d->reason == EW_REASON_UNKNOWN && ew_is_icmp_error(pkt))
		ew_parse_icmp_inner(&c, pkt, &inner);
	pkt->forwarded = skb->ingress_ifindex != 0;
	return ew_judge_egress(skb, pkt, &inner, d);
}

/* ew_egress judges one packet leaving on an uplink. Every path ends in the
 * single exit at the bottom, which counts the verdict. */
static __always_inline int ew_egress(struct __sk_buff *skb, int l3)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ew_decision d = {};
	struct ew_packet pkt = {};
	enum ew_verdict verdict;
	int mode;

	if (ew_plain_path && ew_parse_plain(data, end, l3, &pkt) &&
	    ew_link_need(&pkt) == EW_REASON_UNKNOWN)
		mode = ew_judge_plain(skb, &pkt, &d);
	else
		mode = ew_egress_slow(skb, l3, &pkt, &d);

	verdict = ew_verdict(d.reason, mode);
	ew_account(EW_HOOK_TC_EGRESS, verdict, &d, skb->len);
	if (verdict != EW_VERDICT_PASS)
		ew_report_deny(EW_HOOK_TC_EGRESS, verdict, &d, &pkt,
			       skb->ifindex);
	return verdict == EW_VERDICT_DROP ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

/* ew_local_socket tells whether a socket of the gateway waits for an
 * arriving packet: an established (not listening) TCP socket of its exact
 * four-tuple, or a UDP socket of its port. ctx is the program's context. */
static __always_inline int ew_local_socket(void *ctx,
					   const struct ew_packet *pkt)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 size;
	int found;

	if (pkt->family == 4) {
		t.ipv4.saddr = pkt->saddr[0];
		t.ipv4.daddr = pkt->daddr[0];
		t.ipv4.sport = bpf_htons(pkt->sport);
		t.ipv4.dport = bpf_htons(pkt->dport);
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, pkt->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, pkt->daddr, 16);
		t.ipv6.sport = bpf_htons(pkt->sport);
		t.ipv6.dport = bpf_htons(pkt->dport);
		size = sizeof(t.ipv6);
	}

	if (pkt->proto == IPPROTO_UDP) {
		sk = bpf_sk_lookup_udp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return 0;
		bpf_sk_release(sk);
		return 1;
	}
	sk = bpf_sk_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	found = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return found;
}

/* ew_adopt lets in an adoptable packet (see ew_adoptable) that a local
 * socket waits for, and records its flow so the next packets are plain
 * replies. */
static __always_inline void ew_adopt(void *ctx, const struct ew_packet *pkt,
				     struct ew_decision *d)
{
	struct ew_packet local;

	if (!ew_local_socket(ctx, pkt))
		return;
	d->reason = pkt->proto == IPPROTO_UDP ? EW_REASON_PEER :
						EW_REASON_FLOW_ADOPTED;
	ew_reverse(pkt, &local);
	ew_flow_open(&local, d,
		     pkt->proto == IPPROTO_TCP ? EW_FLOW_ESTABLISHED :
						 EW_FLOW_NEW);
}

/* ew_ingress_decide parses and judges one packet arriving on an uplink and
 * returns its verdict. ctx is the program's context. */
static __always_inline enum ew_verdict ew_ingress_decide(void *ctx,
							 struct ew_cursor *c,
							 int l3, __u32 ifindex,
							 struct ew_decision *d)
{
	struct ew_icmp_inner inner = {};
	struct ew_packet pkt = {};
	enum ew_verdict verdict;
	int mode;

	d->reason = ew_parse(c, l3, &pkt);
	if (d->reason == EW_REASON_UNKNOWN && ew_is_icmp_error(&pkt))
		ew_parse_icmp_inner(c, &pkt, &inner);

	mode = ew_judge_ingress(&pkt, &inner, d);
	if (d->reason == EW_REASON_UNSOLICITED && d->adoptable)
		ew_adopt(ctx, &pkt, d);
	verdict = ew_verdict(d->reason, mode);
	if (verdict != EW_VERDICT_PASS)
		ew_report_deny(EW_HOOK_UPLINK_INGRESS, verdict, d, &pkt,
			       ifindex);
	return verdict;
}

SEC("tc")
int tc_egress_eth(struct __sk_buff *skb)
{
	return ew_egress(skb, 0);
}

SEC("tc")
int tc_egress_l3(struct __sk_buff *skb)
{
	return ew_egress(skb, 1);
}

/* xdp_uplink lets into an Ethernet uplink only what belongs to allowed
 * flows, what the link needs, and the VPN peer. */
SEC("xdp")
int xdp_uplink(struct xdp_md *ctx)
{
	struct ew_decision d = {};
	enum ew_verdict verdict;
	struct ew_cursor c;

	c.pos = (void *)(long)ctx->data;
	c.end = (void *)(long)ctx->data_end;
	verdict = ew_ingress_decide(ctx, &c, 0, ctx->ingress_ifindex, &d);
	ew_account(EW_HOOK_UPLINK_INGRESS, verdict, &d,
		   ctx->data_end - ctx->data);
	return verdict == EW_VERDICT_DROP ? XDP_DROP : XDP_PASS;
}

/* tc_ingress_l3 is xdp_uplink for layer-3 uplinks, where XDP is not an
 * option. */
SEC("tc")
int tc_ingress_l3(struct __sk_buff *skb)
{
	struct ew_decision d = {};
	enum ew_verdict verdict;
	struct ew_cursor c;

	ew_linearize(skb);
	c.pos = (void *)(long)skb->data;
	c.end = (void *)(long)skb->data_end;
	verdict = ew_ingress_decide(skb, &c, 1, skb->ifindex, &d);
	ew_account(EW_HOOK_UPLINK_INGRESS, verdict, &d, skb->len);
	return verdict == EW_VERDICT_DROP ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

/* xdp_lan drops, before the stack sees them, packets from OT hosts that the
 * policy would not let out. */
SEC("xdp")
int xdp_lan(struct xdp_md *ctx)
{
	struct ew_decision d = {};
	struct ew_packet pkt = {};
	enum ew_verdict verdict;
	struct ew_cursor c;
	int mode;

	c.pos = (void *)(long)ctx->data;
	c.end = (void *)(long)ctx->data_end;
	d.reason = ew_parse(&c, 0, &pkt);

	mode = ew_judge_lan(ctx, &pkt, &d);
	verdict = ew_verdict(d.reason, mode);
	ew_account(EW_HOOK_XDP_LAN, verdict, &d, ctx->data_end - ctx->data);
	if (verdict != EW_VERDICT_PASS)
		ew_report_deny(EW_HOOK_XDP_LAN, verdict, &d, &pkt,
			       ctx->ingress_ifindex);
	return verdict == EW_VERDICT_DROP ? XDP_DROP : XDP_PASS;
}

/* guard_sockopt refuses, to the processes of the guarded cgroup, the
 * socket options that send around tc egress (sockguard.h) and lets every
 * other option through untouched. A refusal is counted under the socket
 * hook; in audit mode the option passes and is counted as audit. Before the
 * first policy the guard refuses: fail closed. */
SEC("cgroup/setsockopt")
int guard_sockopt(struct bpf_sockopt *ctx)
{
	enum ew_verdict verdict = EW_VERDICT_PASS;
	enum ew_reason reason;
	struct ew_settings *s;
	__u32 slot = 0;

	reason = ew_sockopt_reason(ctx);
	if (reason != EW_REASON_UNKNOWN) {
		s = ew_active_policy(&slot);
		verdict = s && s->mode == EW_MODE_AUDIT ? EW_VERDICT_AUDIT :
							  EW_VERDICT_DROP;
		ew_count(EW_HOOK_SOCKET, verdict, reason, 0);
	}

	if (verdict == EW_VERDICT_DROP)
		return EW_SOCKOPT_REFUSE;
	ew_sockopt_untouched(ctx);
	return EW_SOCKOPT_ALLOW;
}

/* ew_btf_types is never called, so no program carries it. Its parameters
 * put into BTF the types that the generated Go bindings and the reason
 * names need (Go reads the hook, verdict and reason tables from BTF), now
 * that the functions on the packet path that used to carry them are
 * inlined: a call costs the egress path more than its body. */
__noinline int ew_btf_types(struct ew_rule *rule, struct ew_bucket *b,
			    enum ew_family_index family, enum ew_reason reason)
{
	if (!rule || !b)
		return 0;
	return rule->nranges + b->more + family + reason;
}

/* tc_empty and xdp_empty are the benchmark floors: the cheapest programs of
 * their types. */
SEC("tc")
int tc_empty(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

SEC("xdp")
int xdp_empty(struct xdp_md *ctx)
{
	return XDP_PASS;
}
