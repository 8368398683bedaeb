package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/intercept"
	"github.com/edgeward/edgeward/internal/cgroupfs"
	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/netwatch"
)

// exitNoDaemon is the exit status of `edgeward status` when the kernel
// enforces but no daemon answers: the DNS guard, the spool and reloads
// are down while the pinned policy goes on.
const exitNoDaemon = 3

// defaultNextExpiries is how many learned destinations closest to expiry
// status lists unless -learned says otherwise.
const defaultNextExpiries = 10

// statusReport is what `edgeward status` shows, as text or JSON. The JSON
// field names are an interface (README, "edgeward status"): add fields,
// never rename one.
type statusReport struct {
	Loaded     bool               `json:"loaded"`
	Mode       string             `json:"mode,omitempty"`
	Generation uint32             `json:"generation,omitempty"`
	Entries    int                `json:"policy_entries"`
	Capacity   int                `json:"policy_capacity"`
	Maps       []statusMap        `json:"maps"`
	Interfaces []statusIface      `json:"interfaces"`
	Tunnels    []statusTunnel     `json:"tunnels"`
	Counters   []statusCounter    `json:"counters"`
	EventsLost loader.EventLosses `json:"events_lost"`
	// SocketGuard is the socket guard: where it is attached and what it
	// refused.
	SocketGuard statusGuard   `json:"socket_guard"`
	Learned     statusLearned `json:"learned"`
	// DNSRules is the state of the transparent mode's netfilter rules:
	// "intact", "changed" (missing, flushed or another queue number) or
	// the error reading them; left out without dns.transparent.
	DNSRules string       `json:"dns_rules,omitempty"`
	Daemon   statusDaemon `json:"daemon"`
}

// statusMap is how full one kernel map is.
type statusMap struct {
	Map      string `json:"map"`
	Entries  int    `json:"entries"`
	Capacity int    `json:"capacity"`
}

type statusIface struct {
	Name  string       `json:"name"`
	Role  string       `json:"role"`
	Up    bool         `json:"up"`
	Hooks []statusHook `json:"hooks"`
}

type statusHook struct {
	Hook string `json:"hook"`
	Mode string `json:"attach"`
}

// statusTunnel is one VPN interface: present ones from netlink, and
// exact names from interfaces.vpn that no interface carries.
type statusTunnel struct {
	Name    string `json:"name"`
	Present bool   `json:"present"`
	// Up is true when the interface is up and has a carrier: for a TUN
	// device, the VPN process holds it open.
	Up        bool   `json:"up"`
	OperState string `json:"oper_state,omitempty"`
}

type statusCounter struct {
	Hook    string `json:"hook"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// statusGuard is the socket guard as the pins show it. Cgroup is
// paths.cgroup as this machine resolves it; Attached tells whether a
// pinned link holds the guard on that very cgroup, and Problem says why
// not. Denied has a row per verdict and reason that counted a call.
type statusGuard struct {
	Cgroup   string         `json:"cgroup,omitempty"`
	Attached bool           `json:"attached"`
	Hooks    []string       `json:"hooks"`
	Problem  string         `json:"problem,omitempty"`
	Denied   []statusDenied `json:"denied"`
}

// statusDenied is one cell of the socket guard's counters.
type statusDenied struct {
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	Calls   uint64 `json:"calls"`
}

// statusLearned is the kernel's learned destinations: how many are live,
// how many per allowlist entry, and those closest to expiry.
type statusLearned struct {
	Live      int                 `json:"live"`
	Capacity  int                 `json:"capacity"`
	ByPattern []statusPattern     `json:"by_pattern"`
	Next      []statusLearnedDest `json:"next_expiries"`
}

type statusPattern struct {
	Pattern   string `json:"pattern"`
	Addresses int    `json:"addresses"`
}

// statusLearnedDest is one learned destination. Pattern comes from the
// kernel's index into dns.names of the config file status read; Name,
// the query name, only from a running daemon.
type statusLearnedDest struct {
	Addr      string   `json:"addr"`
	Ports     []string `json:"ports"`
	Pattern   string   `json:"pattern"`
	Name      string   `json:"name,omitempty"`
	ExpiresIn float64  `json:"expires_in_seconds"`
}

// cmdStatus prints what the kernel enforces in the current network
// namespace and, when the daemon answers on its control socket, the state
// of its DNS guard, spool and forwarder. The kernel part reads the pins,
// so it works whether the daemon runs or not.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	f := newFlags("status", stderr)
	asJSON := f.Bool("json", false, "print JSON instead of tables")
	next := f.Int("learned", defaultNextExpiries, "list the `N` learned destinations closest to expiry")
	if status, ok := f.parse(args); !ok {
		return status
	}
	if *next < 0 {
		fmt.Fprintf(stderr, "edgeward status: -learned %d: want 0 or more\n", *next)
		return exitUsage
	}
	cfg, ok := f.loadConfig(stderr)
	if !ok {
		return exitUsage
	}

	report, err := readStatus(cfg, *next)
	if err != nil {
		fmt.Fprintf(stderr, "edgeward status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		writeJSON(stdout, report)
	} else {
		printStatus(stdout, cfg, report, time.Now())
	}
	return report.exitStatus()
}

// exitStatus is 0 when the kernel enforces and the daemon answered, 3
// when only the kernel part could be read, 1 when nothing is loaded.
func (r *statusReport) exitStatus() int {
	switch {
	case !r.Loaded:
		return exitFailure
	case !r.Daemon.Running:
		return exitNoDaemon
	}
	return exitOK
}

// readStatus collects the report: the kernel part from the pins and the
// interfaces, then the daemon part from the control socket, asking it for
// the query names of the next learned destinations to expire.
func readStatus(cfg *config.Config, next int) (*statusReport, error) {
	r := &statusReport{
		Capacity: loader.MaxRules, Maps: []statusMap{}, Interfaces: []statusIface{}, Tunnels: []statusTunnel{},
		Counters: []statusCounter{}, Learned: statusLearned{ByPattern: []statusPattern{}, Next: []statusLearnedDest{}},
		SocketGuard: statusGuard{Hooks: []string{}, Denied: []statusDenied{}},
	}
	if err := r.readKernel(cfg, next); err != nil {
		return nil, err
	}
	r.readDNSRules(cfg.DNS)
	r.readDaemon(cfg.Paths.Socket)
	return r, nil
}

// readDNSRules checks the transparent mode's rules, which hold whether
// the daemon runs or not.
func (r *statusReport) readDNSRules(cfg config.DNS) {
	if !cfg.Transparent {
		return
	}
	intact, err := intercept.Intact(cfg.Queue.Number)
	switch {
	case err != nil:
		r.DNSRules = err.Error()
	case intact:
		r.DNSRules = "intact"
	default:
		r.DNSRules = "changed"
	}
}

// readKernel fills the kernel part; without pins it leaves Loaded false.
func (r *statusReport) readKernel(cfg *config.Config, next int) error {
	maps, err := loader.OpenPinned(cfg.Paths.BPFFS)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer maps.Close()
	r.Loaded = true

	if err := r.readPolicy(maps); err != nil {
		return err
	}
	if err := r.readMaps(maps); err != nil {
		return err
	}
	if err := r.readInterfaces(cfg); err != nil {
		return err
	}
	if err := r.readCounters(maps); err != nil {
		return err
	}
	if err := r.readGuard(cfg); err != nil {
		return err
	}
	if err := r.readLearned(maps, cfg, next); err != nil {
		return err
	}
	r.EventsLost, err = maps.EventLosses()
	return err
}

func (r *statusReport) readPolicy(maps *loader.Maps) error {
	p, ok, err := maps.ActivePolicy()
	if err != nil || !ok {
		return err
	}
	r.Mode, r.Generation, r.Entries = "enforce", p.Generation, p.Entries
	if p.Audit {
		r.Mode = "audit"
	}
	return nil
}

// readMaps counts the entries of every map that can fill.
func (r *statusReport) readMaps(maps *loader.Maps) error {
	usage, err := maps.Usage()
	if err != nil {
		return err
	}
	for _, u := range usage {
		r.Maps = append(r.Maps, statusMap{Map: u.Map, Entries: u.Entries, Capacity: u.Capacity})
	}
	return nil
}

// mapCapacity is the capacity readMaps found for a map, 0 if none.
func (r *statusReport) mapCapacity(name string) int {
	for _, m := range r.Maps {
		if m.Map == name {
			return m.Capacity
		}
	}
	return 0
}

// readInterfaces lists every interface with its role under cfg and the
// hooks found attached to it in the kernel, then the tunnels.
func (r *statusReport) readInterfaces(cfg *config.Config) error {
	links, err := netwatch.List()
	if err != nil {
		return err
	}
	attached, err := loader.Attachments(cfg.Paths.BPFFS)
	if err != nil {
		return err
	}
	hooks := map[int][]statusHook{}
	for _, a := range attached {
		hooks[a.Ifindex] = append(hooks[a.Ifindex], statusHook{Hook: a.Hook.String(), Mode: string(a.Mode)})
	}
	for _, l := range links {
		r.Interfaces = append(r.Interfaces, statusIface{
			Name: l.Name, Role: cfg.Classify(l.Name).String(), Up: l.Up, Hooks: append([]statusHook{}, hooks[l.Index]...),
		})
	}
	r.Tunnels = readTunnels(cfg, links)
	return nil
}

// readTunnels describes every VPN interface present, and every exact name
// in interfaces.vpn that is missing. An interface that vanishes between
// the listing and the lookup is shown as missing.
func readTunnels(cfg *config.Config, links []netwatch.Link) []statusTunnel {
	out := []statusTunnel{}
	present := map[string]bool{}
	for _, l := range links {
		if cfg.Classify(l.Name) != config.RoleVPN {
			continue
		}
		present[l.Name] = true
		out = append(out, tunnelState(l.Name))
	}
	for _, pattern := range cfg.Interfaces.VPN {
		if isExactName(pattern) && !present[pattern] {
			out = append(out, statusTunnel{Name: pattern})
		}
	}
	return out
}

// tunnelState reads one interface's flags and operational state.
func tunnelState(name string) statusTunnel {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return statusTunnel{Name: name}
	}
	a := link.Attrs()
	up := a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0
	return statusTunnel{Name: name, Present: true, Up: up, OperState: a.OperState.String()}
}

// isExactName reports whether an interfaces pattern names one interface:
// path.Match has nothing to expand in it.
func isExactName(pattern string) bool {
	return !strings.ContainsAny(pattern, `*?[\`)
}

func (r *statusReport) readCounters(maps *loader.Maps) error {
	counters, err := maps.Counters()
	if err != nil {
		return err
	}
	for _, c := range counters {
		if c.Hook == loader.HookSocket {
			r.SocketGuard.Denied = append(r.SocketGuard.Denied, statusDenied{
				Verdict: c.Verdict.String(), Reason: c.Reason.String(), Calls: c.Packets,
			})
			continue
		}
		r.Counters = append(r.Counters, statusCounter{
			Hook: c.Hook.String(), Verdict: c.Verdict.String(), Reason: c.Reason.String(),
			Packets: c.Packets, Bytes: c.Bytes,
		})
	}
	return nil
}

// readGuard finds the socket guard's pinned links and checks that they
// hold paths.cgroup.
func (r *statusReport) readGuard(cfg *config.Config) error {
	attached, err := loader.GuardAttachments(cfg.Paths.BPFFS)
	if err != nil {
		return err
	}
	g := &r.SocketGuard
	dir, err := cfg.GuardCgroup()
	if err != nil {
		g.Problem = err.Error()
		return nil
	}
	g.Cgroup = dir
	id, err := cgroupfs.ID(dir)
	if err != nil {
		g.Problem = err.Error()
		return nil
	}
	for _, a := range attached {
		if a.CgroupID == id {
			g.Hooks = append(g.Hooks, string(a.Hook))
		}
	}
	g.Attached = len(g.Hooks) > 0
	switch {
	case g.Attached:
	case len(attached) > 0:
		g.Problem = "attached to another cgroup than paths.cgroup (or to one removed since); the daemon moves it when it starts"
	default:
		g.Problem = "not attached; the daemon's log says why"
	}
	return nil
}

// readLearned reads the live learned destinations from the kernel.
func (r *statusReport) readLearned(maps *loader.Maps, cfg *config.Config, next int) error {
	dests, err := maps.LearnedDests()
	if err != nil {
		return err
	}
	names := make([]string, len(cfg.DNS.Names))
	for i, n := range cfg.DNS.Names {
		names[i] = n.Match
	}
	r.Learned = summarizeLearned(dests, names, next, r.mapCapacity("ew_learned_dests"))
	return nil
}

// summarizeLearned counts dests per allowlist entry and lists the next
// ones to expire, soonest first (ties by address, for a stable order).
// patterns maps the kernel's name index to dns.names[].match; an index
// past it (the file changed since the entry was learned) shows as
// "#N".
func summarizeLearned(dests []loader.LearnedDest, patterns []string, next, capacity int) statusLearned {
	out := statusLearned{Live: len(dests), Capacity: capacity, ByPattern: []statusPattern{}, Next: []statusLearnedDest{}}
	pattern := func(i uint16) string {
		if int(i) < len(patterns) {
			return patterns[i]
		}
		return fmt.Sprintf("#%d", i)
	}

	counts := map[string]int{}
	for _, d := range dests {
		counts[pattern(d.Name)]++
	}
	for p, n := range counts {
		out.ByPattern = append(out.ByPattern, statusPattern{Pattern: p, Addresses: n})
	}
	slices.SortFunc(out.ByPattern, func(a, b statusPattern) int { return cmp.Compare(a.Pattern, b.Pattern) })

	sorted := slices.Clone(dests)
	slices.SortFunc(sorted, func(a, b loader.LearnedDest) int {
		return cmp.Or(cmp.Compare(a.Lifetime, b.Lifetime), a.Addr.Compare(b.Addr))
	})
	for _, d := range sorted[:min(next, len(sorted))] {
		out.Next = append(out.Next, statusLearnedDest{
			Addr: d.Addr.String(), Ports: portStrings(d.Ports), Pattern: pattern(d.Name),
			ExpiresIn: d.Lifetime.Seconds(),
		})
	}
	return out
}

func portStrings(ports []config.PortRange) []string {
	out := make([]string, len(ports))
	for i, p := range ports {
		out[i] = p.String()
	}
	return out
}

// nextAddrs are the addresses of the listed learned destinations, for
// asking the daemon their query names.
func (l *statusLearned) nextAddrs() []netip.Addr {
	var out []netip.Addr
	for _, d := range l.Next {
		if a, err := netip.ParseAddr(d.Addr); err == nil {
			out = append(out, a)
		}
	}
	return out
}
