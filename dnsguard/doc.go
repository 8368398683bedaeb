// Package dnsguard is Edgeward's DNS guard: a forwarding resolver that
// answers only names on the allowlist, checks where their answers point,
// and writes the accepted addresses into the data plane before the client
// sees them.
//
// # Data flow
//
//	client ──UDP/TCP──▶ Serve ─▶ ACL ──no──▶ REFUSED
//	                              │
//	                     one IN question? ──no──▶ FORMERR / NOTIMP
//	                              │
//	                      Matcher.Match ──no──▶ deny_response (REFUSED|NXDOMAIN)
//	                              │ rule (pattern, ports, answers_in)
//	                              ▼
//	               upstreams of the longest zone: server 1, 2, … (timeout each,
//	               failover, TCP retry on TC, EDNS buffer 1232)
//	                              │ answer               └─ all failed ─▶ SERVFAIL
//	                              ▼
//	      judge: CNAME chain from the query name ─▶ A/AAAA of the chain's end
//	             pinned by the rule ──broken──▶ SERVFAIL + event
//	                              │ addresses, lifetime = min TTL clamped to [min,max]
//	                              ▼
//	      Learner.Learn (kernel map written) ──error/timeout──▶ SERVFAIL + event
//	                              │ then view updated, LRU evictions to Forgetter
//	                              ▼
//	                reply to the client (TTLs cut to the lifetime)
//
// # Invariants
//
//   - A reply carrying an address is written only after Learn returned nil
//     for that address: the client's first connection never races the map.
//   - No TTL in a reply exceeds the lifetime asked of the learner, and a
//     learned lifetime never shrinks while the guard holds the entry (a
//     refresh asks for at least what is left), so every released answer is
//     covered by the data plane for as long as the client may cache it. TTLs
//     are cut down, never raised: an answer with TTL 0 is learned for
//     ttl.min and still released with TTL 0.
//   - Only records on the unbroken CNAME chain from the query name count.
//     The chain may leave the allowlist (cloud names alias into provider
//     zones); its addresses are judged by the rules of the name the client
//     asked for. Out-of-chain records are dropped from the reply, so the
//     client never holds an address the data plane does not know.
//   - Pinning: with answers_in, every address must lie inside it
//     (IPv4-mapped IPv6 is judged as IPv4). Without it, no address may be
//     private (RFC 1918, ULA), loopback, link-local, CGNAT, unspecified,
//     multicast, reserved, or in Options.LANPrefixes; a NAT64 address is
//     judged by the IPv4 address it embeds. Unspecified, loopback and
//     multicast are refused even inside answers_in. One bad address
//     rejects the whole answer.
//   - Nothing is learned from a truncated answer. The guard retries over
//     TCP itself; if that fails a UDP client gets an empty TC reply and
//     asks again over TCP.
//   - Every query is counted under exactly one result of a fixed set;
//     metric labels are results or configured patterns, never a name the
//     client sent or an address.
//   - The package never logs: it returns errors, counts, and hands
//     rejections to Options.OnEvent through a token-bucket limiter.
//
// # Decisions and known compromises
//
//   - Query types other than A and AAAA for allowed names are forwarded,
//     with address records removed and nothing learned; ANY, AXFR, IXFR and
//     MAILA/MAILB get NOTIMP. HTTPS/SVCB address hints are passed as they
//     are: they open nothing, since the data plane only knows learned
//     addresses.
//   - The guard does not chase an incomplete chain; upstreams are expected
//     to be recursive resolvers that return the whole chain.
//   - The address cap (Options.MaxAddrsPerName) is per configured pattern,
//     so a "**.zone" pattern shares one cap among all its names. An
//     eviction may cut a client that still caches the evicted address.
//   - The view keys on (pattern, address); two queries learning the same
//     address concurrently may reach the learner out of order, so the
//     kernel can briefly hold the shorter of two lifetimes.
//   - Upstream queries carry a random ID; their UDP sockets are pooled per
//     server and replaced after 128 exchanges or any error, which trades
//     some source-port randomness for throughput (pinning still bounds
//     what a spoofed answer could open). Client EDNS options are not
//     forwarded.
//   - Transparent mode: JudgeIntercepted judges a query or an answer that
//     other clients and servers exchanged through the gateway (package
//     intercept queues them) with the same matching, pinning and learning;
//     the message passes whole or not at all. The guard's own upstream
//     sockets go through Options.SocketControl, which marks them, so
//     netfilter lets them by.
package dnsguard
