package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// ApplyPolicy makes p the active policy in one step: it writes p into a new
// map sized for it and then swaps that map into the policy slot, so every
// packet sees either the old policy or the new one. When an error is
// returned the old policy is still active.
func (l *Loader) ApplyPolicy(p *Policy) error {
	inner, err := l.newPolicyMap(p)
	if err != nil {
		return err
	}
	defer inner.Close()

	if err := l.objs.Policy.Put(uint32(0), inner); err != nil {
		return fmt.Errorf("switch to policy generation %d: %w", p.Generation, err)
	}
	return nil
}

// newPolicyMap creates and fills the inner map of one policy generation.
func (l *Loader) newPolicyMap(p *Policy) (*ebpf.Map, error) {
	if p.Entries() > MaxRules {
		return nil, fmt.Errorf("%w: %d entries, at most %d", ErrPolicyTooLarge, p.Entries(), MaxRules)
	}

	spec := l.spec.Maps["ew_policy"].InnerMap.Copy()
	spec.Name = "ew_rules"
	spec.MaxEntries = uint32(p.Entries())
	inner, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("create policy map for %d entries: %w", p.Entries(), err)
	}

	if err := fill(inner, p); err != nil {
		inner.Close()
		return nil, fmt.Errorf("write policy generation %d: %w", p.Generation, err)
	}
	return inner, nil
}

// fill writes the policy's entries, in batches where the kernel can.
func fill(m *ebpf.Map, p *Policy) error {
	_, err := m.BatchUpdate(p.keys, p.rules, nil)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	for i := range p.keys {
		if err := m.Put(&p.keys[i], &p.rules[i]); err != nil {
			return err
		}
	}
	return nil
}

// ActivePolicy describes the policy the kernel enforces now.
type ActivePolicy struct {
	Generation uint32
	Audit      bool
	Entries    int
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
	policy   *ebpf.Map
}

// OpenPinned opens the maps pinned under pinPath for reading. It fails with
// an error wrapping os.ErrNotExist when nothing is pinned there.
func OpenPinned(pinPath string) (*Maps, error) {
	dir := newPinLayout(pinPath).maps
	counters, err := ebpf.LoadPinnedMap(filepath.Join(dir, "ew_counters"), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open pinned counters: %w", err)
	}
	policy, err := ebpf.LoadPinnedMap(filepath.Join(dir, "ew_policy"), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		counters.Close()
		return nil, fmt.Errorf("open pinned policy: %w", err)
	}
	return &Maps{counters: counters, policy: policy}, nil
}

// Maps returns a reader of the loader's own maps. It shares the loader's
// file descriptors: do not Close it.
func (l *Loader) Maps() *Maps {
	return &Maps{counters: l.objs.Counters, policy: l.objs.Policy}
}

// Close releases the maps.
func (m *Maps) Close() error {
	return errors.Join(m.counters.Close(), m.policy.Close())
}

// ActivePolicy reads the settings and size of the active policy. ok is
// false when no policy has been applied yet.
func (m *Maps) ActivePolicy() (p ActivePolicy, ok bool, err error) {
	var id ebpf.MapID
	if err := m.policy.Lookup(uint32(0), &id); err != nil || id == 0 {
		return p, false, nil
	}
	inner, err := ebpf.NewMapFromID(id)
	if errors.Is(err, os.ErrNotExist) {
		return p, false, nil // replaced between the two look-ups
	}
	if err != nil {
		return p, false, fmt.Errorf("open active policy map: %w", err)
	}
	defer inner.Close()

	var settings edgewardEwRule
	if err := inner.Lookup(&edgewardEwRuleKey{Family: familySettings}, &settings); err != nil {
		return p, false, fmt.Errorf("read policy settings: %w", err)
	}
	p.Generation = settings.Generation
	p.Audit = settings.Mode == 1
	p.Entries = int(inner.MaxEntries())
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
