package config

import (
	"net/netip"
	"time"
)

// DefaultPath is where the daemon and the CLI look for the config file when
// no -c flag is given.
const DefaultPath = "/etc/edgeward/edgeward.yaml"

// Defaults applied by Parse to keys the file leaves out.
const (
	DefaultMode         = ModeEnforce
	DefaultBPFFS        = "/sys/fs/bpf/edgeward"
	DefaultState        = "/var/lib/edgeward"
	DefaultSocket       = "/run/edgeward/edgeward.sock"
	DefaultMetrics      = "127.0.0.1:9470"
	DefaultTTLMin       = 60 * time.Second
	DefaultTTLMax       = time.Hour
	DefaultDenyResponse = "refused"
	DefaultWhenFull     = "drop_oldest"
	DefaultMaxBytes     = int64(1) << 30 // 1GiB
	DefaultMaxAge       = 168 * time.Hour
	DefaultDNSPort      = 53 // port of an upstream server written without one
)

// Mode says whether the data plane drops what the policy denies.
type Mode string

// Modes of the data plane.
const (
	ModeEnforce Mode = "enforce" // drop and count
	ModeAudit   Mode = "audit"   // count and report, drop nothing
)

// Config is one parsed and validated config file.
//
// A Config returned by Parse has every default filled in, so callers never
// look at a zero value to decide on a default. Lists the file leaves out
// or writes empty are nil. Treat a Config as read-only: the daemon may
// share it between goroutines.
type Config struct {
	File       string // path it was loaded from
	Mode       Mode   // default enforce
	Interfaces Interfaces
	Endpoints  []Endpoint
	Proxy      *Proxy // nil when the file has no proxy section
	DNS        DNS
	Spool      Spool
	Metrics    Metrics
	Paths      Paths
}

// Interfaces says which interfaces are VPN, LAN or ignored. Every other
// interface except lo is an uplink, including ones that appear later.
//
// VPN, LAN and Ignore hold path.Match patterns; Parse guarantees that each
// is valid, that no pattern appears twice and that no interface name can
// match patterns of two roles.
type Interfaces struct {
	VPN         []string
	LAN         []string
	Ignore      []string
	LANServices []PortRange // gateway services OT hosts may reach besides DNS and spool
}

// Endpoint is an approved destination on uplinks: a packet to one of To
// with a protocol and port in Ports may leave.
type Endpoint struct {
	Name  string
	To    []netip.Prefix // masked; IPv4 as IPv4, never IPv4-mapped IPv6
	Ports []PortRange
}

// Proxy is the on-premises TLS proxy (HTTP CONNECT).
type Proxy struct {
	Address netip.AddrPort
}

// DNS configures the DNS guard. It runs when Listen is not empty or
// Transparent is set.
type DNS struct {
	Listen       []netip.AddrPort
	Transparent  bool  // also inspect DNS that crosses the gateway (NFQUEUE)
	Queue        Queue // the NFQUEUE of transparent mode
	Upstreams    []Upstream
	Names        []Name
	TTL          TTL
	DenyResponse string // "refused" (default) or "nxdomain"
}

// Queue is the NFQUEUE that transparent mode reads intercepted DNS from.
// A packet that arrives while Length packets wait is dropped by the
// kernel, and counted.
type Queue struct {
	Number uint16 // queue number, unique among the gateway's NFQUEUE users
	Length uint32 // packets waiting at most
}

// Defaults of the transparent mode's queue.
const (
	DefaultQueueNumber = 53
	DefaultQueueLength = 1024
)

// Upstream is a set of zones and the servers that resolve them.
// Zones are lower case without a trailing dot; no zone appears in two
// upstreams.
type Upstream struct {
	Zones   []string
	Servers []netip.AddrPort // port 53 when the file gives none
}

// Name is one entry of the DNS allowlist.
//
// Match is in canonical form: lower case, no trailing dot, either an exact
// name, "*.zone" (exactly one label before zone) or "**.zone" (one or
// more labels before zone).
type Name struct {
	Match     string
	Ports     []PortRange    // what an answer opens
	AnswersIn []netip.Prefix // where answers must fall
}

// TTL bounds the lifetime of a learned destination: the answer's TTL,
// raised to Min and cut to Max.
type TTL struct {
	Min, Max time.Duration
}

// Spool configures the store-and-forward spool. Its local API runs when
// Listen is not empty; with Forward nil the spool only buffers.
type Spool struct {
	Dir      string // default <paths.state>/spool
	Listen   []netip.AddrPort
	MaxBytes int64         // default 1GiB
	MaxAge   time.Duration // default 168h
	WhenFull string        // "drop_oldest" (default) or "reject"
	// TokenFile, when set, holds the bearer token producers must send
	// (Authorization: Bearer ...); the daemon reads it at start.
	TokenFile string
	Forward   *Forward // nil when absent
}

// Forward says where the spool sends its streams.
//
// URL has scheme mqtts or https. Topic may contain "{stream}", replaced by
// the stream name; it is required with mqtts. Proxy, when set, is an
// http:// URL of an HTTP CONNECT proxy.
type Forward struct {
	URL   string
	Topic string
	Proxy string
	TLS   TLS
}

// TLS names the files for the forwarder's TLS session; each is an absolute
// path or empty. Cert and Key are both set or both empty. Parse does not
// open them.
type TLS struct {
	CA, Cert, Key string
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Listen string // host:port, default 127.0.0.1:9470
}

// Paths says where the daemon keeps its state. All are absolute and
// cleaned (filepath.Clean).
type Paths struct {
	BPFFS  string // pins; must be on a bpffs that outlives the daemon
	State  string
	Socket string // control socket; at most 107 bytes (sun_path)
	// Cgroup is the cgroup v2 directory whose processes the socket guard
	// covers. It is empty when the file leaves it out, the one default
	// Parse cannot fill in: the root of the cgroup v2 hierarchy, which
	// only the machine can tell (see GuardCgroup).
	Cgroup string
	// CgroupAt is where the file sets Cgroup, for GuardCgroup's errors;
	// zero when it does not.
	CgroupAt Position
}

// Position is a place in the config file; Line and Column are 1-based.
type Position struct {
	Line, Column int
}

// defaults returns a Config holding every default; Parse overwrites what
// the file sets.
func defaults(file string) *Config {
	return &Config{
		File: file,
		Mode: DefaultMode,
		DNS: DNS{
			TTL:          TTL{Min: DefaultTTLMin, Max: DefaultTTLMax},
			Queue:        Queue{Number: DefaultQueueNumber, Length: DefaultQueueLength},
			DenyResponse: DefaultDenyResponse,
		},
		Spool: Spool{
			MaxBytes: DefaultMaxBytes,
			MaxAge:   DefaultMaxAge,
			WhenFull: DefaultWhenFull,
		},
		Metrics: Metrics{Listen: DefaultMetrics},
		Paths: Paths{
			BPFFS:  DefaultBPFFS,
			State:  DefaultState,
			Socket: DefaultSocket,
		},
	}
}
