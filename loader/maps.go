package loader

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// ApplyPolicy makes p the active policy so that every packet sees either
// the old policy or the new one, whole:
//
//  1. Wait until no packet can still be reading the inactive slot (a
//     packet that looked up the slot number before the previous switch).
//  2. Write p into the inactive slot: new maps sized for it, then settings.
//  3. Flip ew_slot to that slot: one 32-bit write.
//
// Step 1 updates a map-in-map of its own (see settle): the kernel answers
// an update of a map-in-map only after an RCU grace period, by which time
// every program that started before has finished. When an error is
// returned, the active policy is unchanged.
func (l *Loader) ApplyPolicy(p *Policy) error {
	active, err := readActiveSlot(l.objs.Slot)
	if err != nil {
		return err
	}
	next := 1 - active

	inner, err := l.newPolicyMaps(p)
	if err != nil {
		return err
	}
	defer inner.close()

	if err := settle(l.objs.Rulesets, next); err != nil {
		return err
	}
	if err := l.writeSlot(next, p, inner); err != nil {
		return err
	}
	if err := l.objs.Slot.Put(uint32(0), next); err != nil {
		return fmt.Errorf("switch to policy generation %d: %w", p.Generation, err)
	}
	return nil
}

func readActiveSlot(m *ebpf.Map) (uint32, error) {
	var slot uint32
	if err := m.Lookup(uint32(0), &slot); err != nil {
		return 0, fmt.Errorf("read active policy slot: %w", err)
	}
	if slot > 1 {
		return 0, fmt.Errorf("active policy slot is %d, want 0 or 1", slot)
	}
	return slot, nil
}

// settle waits until no packet can still be reading slot of outer. An
// empty slot needs no wait: no packet can be using it.
func settle(outer *ebpf.Map, slot uint32) error {
	var id ebpf.MapID
	if err := outer.Lookup(slot, &id); err != nil || id == 0 {
		return nil
	}
	if err := waitForPrograms(); err != nil {
		return fmt.Errorf("wait for readers of slot %d: %w", slot, err)
	}
	return nil
}

// waitForPrograms returns once every BPF program that was running when it
// was called has finished. It stores a map into a map-in-map of its own:
// the kernel answers any update of a map-in-map only after an RCU grace
// period, whichever map it is. This needs CAP_BPF only; reopening the
// slot's own map by ID would need CAP_SYS_ADMIN, which the service unit
// does not grant.
func waitForPrograms() error {
	innerSpec := &ebpf.MapSpec{Name: "ew_grace", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}
	outer, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "ew_grace_outer", Type: ebpf.ArrayOfMaps,
		KeySize: 4, ValueSize: 4, MaxEntries: 1, InnerMap: innerSpec,
	})
	if err != nil {
		return fmt.Errorf("create grace map: %w", err)
	}
	defer outer.Close()

	inner, err := ebpf.NewMap(innerSpec)
	if err != nil {
		return fmt.Errorf("create grace map entry: %w", err)
	}
	defer inner.Close()
	return outer.Put(uint32(0), inner)
}

// policyMaps are the inner maps of one policy: its tables (indexed like
// Policy.tables) and its rulesets.
type policyMaps struct {
	tables   [numFamilies]*ebpf.Map
	rulesets *ebpf.Map
}

func (m policyMaps) close() {
	for _, inner := range append(m.tables[:], m.rulesets) {
		if inner != nil {
			inner.Close()
		}
	}
}

// writeSlot stores the maps and settings of p in slot.
func (l *Loader) writeSlot(slot uint32, p *Policy, inner policyMaps) error {
	for i, table := range inner.tables {
		if err := l.objs.Tables.Put(uint32(numFamilies)*slot+uint32(i), table); err != nil {
			return fmt.Errorf("store policy table: %w", err)
		}
	}
	if err := l.objs.Rulesets.Put(slot, inner.rulesets); err != nil {
		return fmt.Errorf("store port ranges: %w", err)
	}
	if err := l.objs.Policies.Put(slot, &p.settings); err != nil {
		return fmt.Errorf("store policy settings: %w", err)
	}
	return nil
}

// newPolicyMaps creates and fills the inner maps of one policy; on error
// it closes those it made.
func (l *Loader) newPolicyMaps(p *Policy) (m policyMaps, err error) {
	defer func() {
		if err != nil {
			m.close()
			err = fmt.Errorf("write the maps of policy generation %d: %w", p.Generation, err)
		}
	}()
	for i, table := range p.tables {
		if m.tables[i], err = newArray(l.spec.Maps["ew_tables"], table); err != nil {
			return m, err
		}
	}
	m.rulesets, err = newArray(l.spec.Maps["ew_rulesets"], p.rulesets)
	return m, err
}

// newArray creates an inner array map of outer's type holding values (at
// least one element: the kernel has no empty arrays).
func newArray[V any](outer *ebpf.MapSpec, values []V) (*ebpf.Map, error) {
	spec := outer.InnerMap.Copy()
	spec.MaxEntries = uint32(max(len(values), 1))
	m, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("create map of %d elements: %w", spec.MaxEntries, err)
	}
	if len(values) == 0 {
		return m, nil
	}
	keys := make([]uint32, len(values))
	for i := range keys {
		keys[i] = uint32(i)
	}
	if _, err := m.BatchUpdate(keys, values, nil); err != nil {
		if !errors.Is(err, ebpf.ErrNotSupported) {
			m.Close()
			return nil, err
		}
		if err := putEach(m, keys, values); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// putEach writes values one by one, where the kernel has no batch update.
func putEach[V any](m *ebpf.Map, keys []uint32, values []V) error {
	for i := range keys {
		if err := m.Put(&keys[i], &values[i]); err != nil {
			return err
		}
	}
	return nil
}

// ActivePolicy describes the policy the kernel enforces now.
type ActivePolicy struct {
	Generation uint32
	Audit      bool
	Entries    int // Entries4 + Entries6
	// Entries4 and Entries6 are the IPv4 and IPv6 entries; each family
	// holds at most MaxRules.
	Entries4, Entries6 int
}

// Counter is one cell of the kernel's packet counters.
type Counter struct {
	Hook    Hook
	Verdict Verdict
	Reason  Reason
	Packets uint64
	Bytes   uint64
}

// Maps reads the pinned maps, with or without a running daemon.
type Maps struct {
	counters *ebpf.Map
	active   *ebpf.Map
	settings *ebpf.Map
	losses   *ebpf.Map
	flows    *ebpf.Map
	frags    *ebpf.Map
	learned  *ebpf.Map
	ifaces   *ebpf.Map
	owned    bool
}

// OpenPinned opens the maps pinned under pinPath for reading. It fails with
// an error wrapping os.ErrNotExist when nothing is pinned there.
func OpenPinned(pinPath string) (*Maps, error) {
	dir := newPinLayout(pinPath).maps
	m := &Maps{owned: true}
	for name, dst := range map[string]**ebpf.Map{
		"ew_counters":      &m.counters,
		"ew_slot":          &m.active,
		"ew_policies":      &m.settings,
		"ew_event_losses":  &m.losses,
		"ew_flows":         &m.flows,
		"ew_frags":         &m.frags,
		"ew_learned_dests": &m.learned,
		"ew_ifaces":        &m.ifaces,
	} {
		pinned, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("open pinned map %s: %w", name, err)
		}
		*dst = pinned
	}
	return m, nil
}

// Maps returns a reader of the loader's own maps. It shares the loader's
// file descriptors; its Close does nothing.
func (l *Loader) Maps() *Maps {
	return &Maps{
		counters: l.objs.Counters, active: l.objs.Slot, settings: l.objs.Policies, losses: l.objs.Losses,
		flows: l.objs.Flows, frags: l.objs.Frags, learned: l.objs.Learned, ifaces: l.objs.Ifaces,
	}
}

// Close releases the maps opened by OpenPinned.
func (m *Maps) Close() error {
	if !m.owned {
		return nil
	}
	var errs []error
	for _, mp := range []*ebpf.Map{m.counters, m.active, m.settings, m.losses, m.flows, m.frags, m.learned, m.ifaces} {
		if mp != nil {
			errs = append(errs, mp.Close())
		}
	}
	return errors.Join(errs...)
}

// ActivePolicy reads the settings of the active policy. ok is false when
// no policy has been applied yet.
func (m *Maps) ActivePolicy() (p ActivePolicy, ok bool, err error) {
	slot, err := readActiveSlot(m.active)
	if err != nil {
		return p, false, err
	}
	var s edgewardEwSettings
	if err := m.settings.Lookup(slot, &s); err != nil {
		return p, false, fmt.Errorf("read policy settings: %w", err)
	}
	if s.Generation == 0 {
		return p, false, nil
	}
	p.Generation = s.Generation
	p.Audit = s.Mode == 1
	p.Entries4, p.Entries6 = int(s.Family[indexIPv4].Entries), int(s.Family[indexIPv6].Entries)
	p.Entries = p.Entries4 + p.Entries6
	return p, true, nil
}

// Counters returns the non-zero counter cells, summed over CPUs.
func (m *Maps) Counters() ([]Counter, error) {
	var out []Counter
	var perCPU []edgewardEwCounter
	for slot := range uint32(numHooks * numVerdicts * numReasons) {
		if err := m.counters.Lookup(slot, &perCPU); err != nil {
			return nil, fmt.Errorf("read counter %d: %w", slot, err)
		}
		c := counterAt(slot)
		for _, v := range perCPU {
			c.Packets += v.Packets
			c.Bytes += v.Bytes
		}
		if c.Packets > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

// counterAt names the cell at slot, laid out as in ew_count.
func counterAt(slot uint32) Counter {
	reason := slot % uint32(numReasons)
	rest := slot / uint32(numReasons)
	return Counter{
		Hook:    Hook(rest / uint32(numVerdicts)),
		Verdict: Verdict(rest % uint32(numVerdicts)),
		Reason:  Reason(reason),
	}
}
