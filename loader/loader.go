package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Options configure a Loader.
type Options struct {
	// PinPath is the directory for pins. It must be on a bpffs that
	// outlives the daemon (see the package documentation).
	PinPath string
	// ForceClsact attaches through a clsact qdisc even where tcx exists.
	// Tests use it to cover the fallback on a new kernel.
	ForceClsact bool
	// XDPGeneric attaches XDP programs in generic mode even where the
	// driver has native XDP. On a veth, native XDP adds a ring between the
	// peers; benchmarks compare both.
	XDPGeneric bool
}

// Loader owns Edgeward's objects in the kernel: programs, pinned maps,
// attachments and the active policy. Close releases the Loader's file
// descriptors and leaves everything pinned enforcing; Unload removes it.
type Loader struct {
	opts   Options
	spec   *ebpf.CollectionSpec
	objs   objects
	pins   pinLayout
	floors map[string]*ebpf.Program // empty programs, loaded by Benchmark only

	// xdpModes remembers native or generic per interface, for links this
	// Loader made; an adopted link reports what it was attached with.
	xdpModes map[int]AttachMode

	// retiredGeneration is the generation of the policy an earlier
	// version left in the maps Open retired, 0 without one.
	retiredGeneration uint32
}

// objects are the programs and maps the daemon uses; tc_empty, the
// benchmark floor, is left out.
type objects struct {
	TCEgressEth *ebpf.Program `ebpf:"tc_egress_eth"`
	TCEgressL3  *ebpf.Program `ebpf:"tc_egress_l3"`
	TCIngressL3 *ebpf.Program `ebpf:"tc_ingress_l3"`
	XDPUplink   *ebpf.Program `ebpf:"xdp_uplink"`
	XDPLAN      *ebpf.Program `ebpf:"xdp_lan"`
	// GuardSockopt is the socket guard's cgroup/setsockopt program.
	GuardSockopt *ebpf.Program `ebpf:"guard_sockopt"`
	Counters     *ebpf.Map     `ebpf:"ew_counters"`
	Ifaces       *ebpf.Map     `ebpf:"ew_ifaces"`
	Flows        *ebpf.Map     `ebpf:"ew_flows"`
	Events       *ebpf.Map     `ebpf:"ew_events"`
	Losses       *ebpf.Map     `ebpf:"ew_event_losses"`
	Budgets      *ebpf.Map     `ebpf:"ew_event_budgets"`
	Learned      *ebpf.Map     `ebpf:"ew_learned_dests"`
	Frags        *ebpf.Map     `ebpf:"ew_frags"`
	Slot         *ebpf.Map     `ebpf:"ew_slot"`
	Policies     *ebpf.Map     `ebpf:"ew_policies"`
	Tables       *ebpf.Map     `ebpf:"ew_tables"`
	Rulesets     *ebpf.Map     `ebpf:"ew_rulesets"`
}

func (o *objects) close() {
	for _, c := range []interface{ Close() error }{
		o.TCEgressEth, o.TCEgressL3, o.TCIngressL3, o.XDPUplink, o.XDPLAN, o.GuardSockopt,
		o.Counters, o.Ifaces, o.Flows, o.Frags, o.Events, o.Losses, o.Budgets, o.Learned,
		o.Slot, o.Policies, o.Tables, o.Rulesets,
	} {
		if c != nil {
			c.Close()
		}
	}
}

// pinnedMaps are the maps that survive the daemon, by name.
var pinnedMaps = []string{
	"ew_counters", "ew_frags", "ew_flows", "ew_ifaces",
	"ew_events", "ew_event_losses", "ew_event_budgets", "ew_learned_dests",
	"ew_slot", "ew_policies", "ew_tables", "ew_rulesets",
}

// retiredMaps are pins of maps that earlier versions used and this one
// does not: the kernel hash maps that held the policy before the tables
// of bpf/maps.h. Programs of an earlier version that are still attached
// keep using those maps until their links move to this version's
// programs, so an upgrade needs no unload and has no gap; then the daemon
// removes the pins (RemoveRetiredPins).
var retiredMaps = []string{"ew_active", "ew_policy_settings", "ew_rules4", "ew_rules6"}

// pinLayout names the places under the pin directory. guard holds the
// socket guard's cgroup links, apart from the interface links in links.
type pinLayout struct {
	root, maps, links, progs, guard string
}

func newPinLayout(root string) pinLayout {
	return pinLayout{
		root:  root,
		maps:  filepath.Join(root, "maps"),
		links: filepath.Join(root, "links"),
		progs: filepath.Join(root, "progs"),
		guard: filepath.Join(root, "guard"),
	}
}

// Open loads the programs, adopting maps already pinned under
// opts.PinPath (so a restarted daemon keeps the policy in force), and pins
// maps and programs. It fails when PinPath is not on a bpffs, or when the
// pinned maps do not match this binary's layout.
func Open(opts Options) (*Loader, error) {
	pins := newPinLayout(opts.PinPath)
	if err := preparePinDir(pins); err != nil {
		return nil, err
	}

	spec, err := loadEdgeward()
	if err != nil {
		return nil, err
	}
	for _, name := range pinnedMaps {
		spec.Maps[name].Pinning = ebpf.PinByName
	}
	if err := spec.Variables["ew_page_size"].Set(uint32(os.Getpagesize())); err != nil {
		return nil, fmt.Errorf("set page size: %w", err)
	}

	l := &Loader{
		opts: opts, spec: spec, pins: pins,
		xdpModes: map[int]AttachMode{}, floors: map[string]*ebpf.Program{},
	}
	err = spec.LoadAndAssign(&l.objs, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: pins.maps},
	})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, fmt.Errorf("load objects: pinned maps under %s come from an incompatible version (run edgeward unload first): %w", pins.maps, err)
	}
	if err != nil {
		return nil, fmt.Errorf("load objects: %w", err)
	}

	if err := l.pinPrograms(); err != nil {
		l.objs.close()
		return nil, err
	}
	l.retiredGeneration = retiredGeneration(pins)
	l.pruneLinkPins()
	return l, nil
}

// RetiredGeneration is the generation of the policy that an earlier
// version left in the maps this one retires (retiredMaps), read by Open,
// or 0. A daemon numbers its next policy after it,
// so that generations keep growing across an upgrade.
func (l *Loader) RetiredGeneration() uint32 {
	return l.retiredGeneration
}

// retiredGeneration reads the generation of the active policy in the
// retired maps: ew_active names the slot, and the settings of a slot begin
// with their generation. It returns 0 when they are missing or unreadable.
func retiredGeneration(p pinLayout) uint32 {
	active, err := ebpf.LoadPinnedMap(filepath.Join(p.maps, "ew_active"), nil)
	if err != nil {
		return 0
	}
	defer active.Close()
	settings, err := ebpf.LoadPinnedMap(filepath.Join(p.maps, "ew_policy_settings"), nil)
	if err != nil {
		return 0
	}
	defer settings.Close()

	var slot uint32
	value := make([]byte, settings.ValueSize())
	if active.Lookup(uint32(0), &slot) != nil || settings.Lookup(slot, value) != nil || len(value) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(value)
}

// RemoveRetiredPins removes the pins of the maps an earlier version used
// for its policy (retiredMaps). The daemon calls it once its own policy is
// applied and its programs attached: until then the old programs enforce
// from those maps, and a start that fails before that point leaves them,
// with their generation, for the next one (a start that fails later has
// put its own policy, with the next generation, in this version's maps).
// Programs still attached keep the maps alive without the pins.
func (l *Loader) RemoveRetiredPins() error {
	for _, name := range retiredMaps {
		path := filepath.Join(l.pins.maps, name)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the pin of retired map %s: %w", path, err)
		}
	}
	return nil
}

// preparePinDir checks that the pin directory is (or will be) on a bpffs,
// then creates it. Nothing is created on another file system.
func preparePinDir(p pinLayout) error {
	existing := p.root
	for {
		if _, err := os.Stat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		existing = parent
	}

	var fs unix.Statfs_t
	if err := unix.Statfs(existing, &fs); err != nil {
		return fmt.Errorf("check pin directory %s: %w", p.root, err)
	}
	if fs.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("pin directory %s is not on a bpffs: mount one that outlives the daemon (mount -t bpf bpffs DIR) and point paths.bpffs at it", p.root)
	}

	for _, dir := range []string{p.root, p.maps, p.links, p.progs, p.guard} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create pin directory: %w", err)
		}
	}
	return nil
}

// pruneLinkPins removes pins of links whose interface went away while no
// daemon watched.
func (l *Loader) pruneLinkPins() {
	entries, err := os.ReadDir(l.pins.links)
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(l.pins.links, e.Name())
		lk, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			continue
		}
		if linkIfindex(lk) == 0 {
			lk.Unpin()
		}
		lk.Close()
	}
}

// pinPrograms pins the programs so that status and explain find them while
// the daemon is down. A pin of an older program is replaced.
func (l *Loader) pinPrograms() error {
	for name, prog := range map[string]*ebpf.Program{
		"tc_egress_eth": l.objs.TCEgressEth,
		"tc_egress_l3":  l.objs.TCEgressL3,
		"tc_ingress_l3": l.objs.TCIngressL3,
		"xdp_uplink":    l.objs.XDPUplink,
		"xdp_lan":       l.objs.XDPLAN,
		"guard_sockopt": l.objs.GuardSockopt,
	} {
		path := filepath.Join(l.pins.progs, name)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replace program pin %s: %w", path, err)
		}
		if err := prog.Pin(path); err != nil {
			return fmt.Errorf("pin program %s: %w", name, err)
		}
	}
	return nil
}

// Close releases the loader's file descriptors. Pinned maps, programs and
// links stay and keep enforcing the last policy.
func (l *Loader) Close() error {
	for _, prog := range l.floors {
		prog.Close()
	}
	l.objs.close()
	return nil
}
