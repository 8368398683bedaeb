/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The socket guard: what the cgroup setsockopt program (guard_sockopt in
 * edgeward.c) refuses to the processes of the guarded cgroup.
 *
 * Two kinds of socket send around the qdisc layer, and so around tc egress
 * and every program there:
 *
 *   AF_PACKET with PACKET_QDISC_BYPASS   packet_direct_xmit
 *   AF_XDP                               __xsk_generic_xmit, zero-copy
 *
 * Both are refused at setsockopt, on sockets of those families only. An AF_PACKET socket without the option
 * sends through the qdisc layer and passes tc egress like any other (DHCP
 * clients need such sockets: they stay allowed). An AF_XDP socket needs
 * SOL_XDP options (a UMEM, a ring) before it can bind and send, so refusing
 * every SOL_XDP option leaves it inert. The socket itself cannot be refused
 * at creation: cgroup/sock_create runs for AF_INET and AF_INET6 sockets
 * only (inet_create, inet6_create).
 *
 * The kernel runs cgroup setsockopt programs for native system calls only
 * (do_sock_setsockopt skips them for compat calls): a 32-bit process on a
 * 64-bit kernel is not judged here. See README, "Known limitations".
 */
#ifndef EW_SOCKGUARD_H
#define EW_SOCKGUARD_H

#include <linux/bpf.h>
#include <linux/if_packet.h>

#include "reasons.h"

/* Socket levels from include/linux/socket.h, which is not UAPI. */
#define EW_SOL_PACKET 263
#define EW_SOL_XDP 283

/* Return values of a cgroup sockopt program. */
#define EW_SOCKOPT_REFUSE 0 /* the call fails with EPERM */
#define EW_SOCKOPT_ALLOW 1

/*
 * The kernel's page size; the loader sets it. A program sees at most a page
 * of optval; see ew_sockopt_untouched.
 */
volatile const __u32 ew_page_size = 4096;

/* Address families from include/linux/socket.h, which is not UAPI. */
#define EW_AF_PACKET 17
#define EW_AF_XDP 44

/* ew_sockopt_int reads the int a process passes as optval, or returns -1
 * when it passed less; the kernel then refuses the call itself. */
static __always_inline int ew_sockopt_int(struct bpf_sockopt *ctx, int *value)
{
	int *v = ctx->optval;

	if (ctx->optlen < (int)sizeof(*v) ||
	    (void *)(v + 1) > (void *)ctx->optval_end)
		return -1;
	*value = *v;
	return 0;
}

/* ew_sockopt_reason returns why the guard refuses the option, or
 * EW_REASON_UNKNOWN when it does not. The cgroup hook runs before the
 * socket's family sees the level, so the family is checked here: a SOL_XDP
 * option on a TCP socket is not ours to refuse (the kernel answers
 * ENOPROTOOPT). PACKET_QDISC_BYPASS with 0 turns the bypass off and
 * passes. */
static __always_inline enum ew_reason
ew_sockopt_reason(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	int on;

	if (!sk)
		return EW_REASON_UNKNOWN;
	if (sk->family == EW_AF_PACKET && ctx->level == EW_SOL_PACKET &&
	    ctx->optname == PACKET_QDISC_BYPASS) {
		if (ew_sockopt_int(ctx, &on) == 0 && on == 0)
			return EW_REASON_UNKNOWN;
		return EW_REASON_QDISC_BYPASS;
	}
	if (sk->family == EW_AF_XDP && ctx->level == EW_SOL_XDP)
		return EW_REASON_AF_XDP;
	return EW_REASON_UNKNOWN;
}

/*
 * ew_sockopt_untouched hands an option the guard lets through to the kernel
 * as the process passed it. For an optval longer than a page, of which the
 * program holds only the first page, optlen 0 tells the kernel to use the
 * process's own buffer (Documentation/bpf/prog_cgroup_sockopt.rst, "Large
 * optval"). Left as it is, kernels before "bpf: Don't EFAULT for
 * {g,s}setsockopt with wrong optlen" (Linux 6.5) fail the call with EFAULT,
 * and later ones log "bpf setsockopt: ignoring program buffer". A shorter
 * optval is the program's unchanged copy of it.
 */
static __always_inline void ew_sockopt_untouched(struct bpf_sockopt *ctx)
{
	if (ctx->optlen > (__s32)ew_page_size)
		ctx->optlen = 0;
}

#endif
