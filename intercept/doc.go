// Package intercept is the DNS guard's transparent mode: netfilter rules
// that queue every DNS datagram crossing or leaving the gateway, and the
// NFQUEUE reader that asks the guard for a verdict on each.
//
// # Rules
//
// Install writes three chains of its own into the filter table, for IPv4
// (iptables) and IPv6 (ip6tables), and one jump to each from OUTPUT,
// FORWARD and INPUT; nothing else is touched. A chain's content is
// replaced in one iptables-restore transaction, so an update never leaves
// DNS unjudged. The rules:
//
//   - OUTPUT: loopback and sockets carrying GuardMark (the guard's own,
//     whose connections are marked so their answers pass INPUT) go on;
//     other UDP to port 53 is queued; TCP to port 53 is reset.
//   - FORWARD: UDP to or from port 53 is queued; TCP to port 53 is reset,
//     TCP from port 53 dropped.
//   - INPUT: UDP from port 53 to a socket other than the guard's is queued.
//
// The queue has no bypass: while no reader is bound (the daemon is down or
// restarting) the kernel drops what would be queued, so DNS through the
// gateway stops rather than flowing unjudged. The rules stay until Remove
// (edgeward unload).
//
// The iptables NFQUEUE target is used, through whichever backend the
// iptables command has (nft or legacy): the nftables queue expression is
// missing from many gateway kernels (CONFIG_NFT_QUEUE), the xtables target
// is not.
//
// # Queue
//
// Queue reads the queued packets, parses the IP and UDP headers and hands
// the DNS message to a Judge; the verdict is sent only when the judge
// returns, so an answer's addresses are in the data plane before the
// client sees it. Packets are never changed. A full queue and receive
// buffer overruns make the kernel drop packets; both are counted (Stats).
package intercept
