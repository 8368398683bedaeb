// Package config loads and validates the Edgeward configuration file
// (/etc/edgeward/edgeward.yaml by default) into a Config.
//
// # Data flow
//
//	bytes --yaml.v3--> yaml.Node tree --parser--> Config (defaults filled)
//	                                        \---> ErrorList (every problem)
//
// The file is decoded into yaml.Node rather than into structs so that
// every problem can name its line, column and field path. The parser
// walks the tree once, section by section; each step records its own
// problems and goes on, so one run reports everything that is wrong.
// Cross-checks (an interface pattern overlapping another role, a DNS name
// outside every upstream zone, two sections listening on one socket) run
// during the same walk and point at the later of the two places.
//
// # Invariants of a returned Config
//
//   - Every default is filled in (see the Default* constants); nothing
//     downstream decides defaults from zero values. One exception:
//     Paths.Cgroup is empty when the file leaves it out, since its
//     default (the root of the cgroup v2 hierarchy) depends on the
//     machine; GuardCgroup resolves it.
//   - Interface patterns are valid path.Match patterns, none is "lo",
//     none matches every name, and no interface name of 1-15 characters
//     matches patterns of two roles; Classify therefore has one answer.
//   - Prefixes are masked, IPv4 is never written as IPv4-mapped IPv6, no
//     list holds duplicates or nested entries, and endpoints never hold
//     0.0.0.0/0 or ::/0.
//   - Port sets hold no duplicates or overlapping ranges.
//   - DNS names and zones are lower case without the trailing dot, and
//     every allowlist entry lies in an upstream zone.
//
// # Known compromises
//
//   - Internationalised names must be written in punycode; non-ASCII is
//     refused rather than converted.
//   - YAML aliases and merge keys are refused, so that a small file cannot
//     expand into a huge one.
//   - Parse never touches the file system: TLS files, the spool directory
//     and the bpffs mount are checked by the daemon when it uses them.
//     GuardCgroup does read it (mountinfo, paths.cgroup), and reports a
//     bad paths.cgroup with the line Parse recorded (Paths.CgroupAt).
//
// Parse is safe for concurrent use; a Config must not be modified after
// it is shared.
package config
