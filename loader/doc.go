// Package loader owns everything of Edgeward that touches the kernel: the
// BPF objects of ../bpf (compiled by bpf2go and embedded), their pins, the
// attachments to interfaces, the policy maps, the learned destinations and
// the deny events. It knows no DNS and no telemetry, and it never logs.
//
// # Pins
//
// Everything lives under one directory on a bpffs (Options.PinPath), which
// must outlive the daemon:
//
//	PinPath/maps/ew_*         every map, adopted by the next Open
//	PinPath/progs/<program>   the programs, for status and tools
//	PinPath/links/<ifindex>_<hook>
//	                          tcx and XDP links; clsact filters live in
//	                          their qdisc, with a fixed handle and priority
//	PinPath/guard/setsockopt  the socket guard's cgroup link
//	                          (AttachSocketGuard)
//
// Open loads the programs against the pinned maps (creating them the first
// time), so a restarted daemon keeps the policy, the flows, the learned
// destinations and the counters. Attach then updates a pinned link in place
// (BPF_LINK_UPDATE) or replaces our clsact filter (same handle): a program
// is swapped atomically, there is no moment without one, and never a second
// attachment. AttachSocketGuard does the same for the cgroup link of the
// socket guard, and moves it when paths.cgroup names another cgroup. Close releases file descriptors only; Unload is the one way
// to remove enforcement.
//
// # Policy
//
//	config ──Compile──► Policy ──ApplyPolicy──► slot 1-a ──flip ew_slot──► in force
//
// A policy lives in one of two slots: settings (ew_policies[slot]), one
// table per address family (ew_tables[2*slot+family]) and the distinct
// sets of port ranges (ew_rulesets[slot]), inner array maps of arrays of
// maps. Each prefix's entry carries the port ranges of every endpoint
// prefix that contains it, so the longest match alone decides; the program
// probes the policy's distinct prefix lengths, longest first. The tables
// are hash tables of our own (table.go lays them out; bpf/maps.h describes
// them): a probe costs one bucket, rarely two. ApplyPolicy writes the idle
// slot and flips one 32-bit word; before writing it waits for an RCU grace
// period (by rewriting an outer map entry, which the kernel answers only
// after one), so no packet that looked at the slot number before the
// previous flip can still be reading the slot. Hence every packet sees one
// policy, whole.
//
// # Limits and compromises
//
// Compile refuses a policy that does not fit: more than MaxRules prefixes
// per family, more than MaxPrefixLens distinct lengths per family, more
// than MaxPortRanges port ranges on one prefix, or more gateway services;
// and prefixes for which none of the hash multipliers buildLayout tries
// gives every prefix room in its home bucket or the stash (not seen in the
// tests, which lay out random, sequential and nested prefixes and IPv4 and
// IPv6 address plans up to MaxRules).
// Maps of an incompatible earlier version cannot be adopted: Open says so
// and `edgeward unload` is needed (the programs, not the layouts of the
// maps they share, may change between versions without a gap). The policy
// maps are the exception: a layout change gives them new names, the old
// programs keep the old ones (retiredMaps) until their links move, and the
// daemon then removes their pins; the next generation follows the retired
// one. Learned destinations are an LRU map of
// MaxLearned entries: past it the least recently used one goes.
package loader
