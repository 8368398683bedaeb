//go:build ignore
/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Edgeward's data plane. tc_egress_* run on every uplink and pass a packet
 * only when the active policy allows it.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "parse.h"
#include "policy.h"
#include "reasons.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Bytes pulled into the linear area when headers are not there yet. */
#define EW_PULL_BYTES 256

/* ew_count adds one packet of len bytes to the cell (hook, verdict,
 * reason). Not inlined: as a real function its enum parameters put the hook,
 * verdict and reason tables into BTF, where Go reads their names. */
static __noinline void ew_count(enum ew_hook hook, enum ew_verdict verdict,
				enum ew_reason reason, __u64 len)
{
	__u32 slot = (hook * EW_VERDICT_MAX + verdict) * EW_REASON_MAX + reason;
	struct ew_counter *c = bpf_map_lookup_elem(&ew_counters, &slot);

	if (!c)
		return;
	c->packets++;
	c->bytes += len;
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

/* ew_judge completes a decision: when parsing already decided (d->reason
 * set), it only looks up the mode; otherwise it judges pkt against the
 * active policy. It returns the policy's mode.
 *
 * A global function, so the verifier checks it once for any packet instead
 * of once per parse path: that keeps verification far below its limits on
 * older kernels. The active slot is read once, here, so the decision and
 * the mode come from the same policy. */
__noinline int ew_judge(struct ew_packet *pkt, struct ew_decision *d)
{
	struct ew_settings *s;
	__u32 zero = 0, slot;
	__u32 *active;

	if (!pkt || !d)
		return EW_MODE_ENFORCE;

	active = bpf_map_lookup_elem(&ew_active, &zero);
	if (!active) {
		d->reason = d->reason ?: EW_REASON_NO_POLICY;
		return EW_MODE_ENFORCE;
	}
	slot = *active;
	s = bpf_map_lookup_elem(&ew_policy_settings, &slot);
	if (!s || s->generation == 0) {
		d->reason = d->reason ?: EW_REASON_NO_POLICY;
		return EW_MODE_ENFORCE;
	}

	if (d->reason == EW_REASON_UNKNOWN)
		ew_decide(s, slot, pkt, d);
	return s->mode;
}

/* ew_egress judges one packet leaving on an uplink. l3 is set for devices
 * whose packets start at the network header. Every path ends in the single
 * exit at the bottom, which counts the verdict. */
static __always_inline int ew_egress(struct __sk_buff *skb, int l3)
{
	struct ew_decision d = { .reason = EW_REASON_UNKNOWN };
	struct ew_packet pkt = {};
	enum ew_verdict verdict;
	struct ew_cursor c;
	__u16 proto = 0;
	int mode;

	ew_linearize(skb);
	c.pos = (void *)(long)skb->data;
	c.end = (void *)(long)skb->data_end;

	if (!l3) {
		d.reason = ew_parse_eth(&c, &proto);
		if (d.reason != EW_REASON_UNKNOWN)
			goto out;
		if (proto == ETH_P_ARP) {
			d.reason = EW_REASON_ARP;
			goto out;
		}
	}
	d.reason = ew_parse_ip(&c, proto, &pkt);

out:
	mode = ew_judge(&pkt, &d);
	verdict = ew_verdict(d.reason, mode);
	ew_count(EW_HOOK_TC_EGRESS, verdict, d.reason, skb->len);
	return verdict == EW_VERDICT_DROP ? TC_ACT_SHOT : TC_ACT_UNSPEC;
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

/* tc_empty is the benchmark floor: the cheapest program of the same type. */
SEC("tc")
int tc_empty(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}
