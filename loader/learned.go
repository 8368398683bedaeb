package loader

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/config"
)

// MaxLearned is how many learned destinations the data plane holds; past
// it the least recently used entry makes room.
const MaxLearned = 65536

// LearnedDest is a destination the DNS guard resolved for an allowed name.
type LearnedDest struct {
	Addr  netip.Addr
	Ports []config.PortRange
	// Lifetime counts from now; the kernel drops the entry after it.
	Lifetime time.Duration
	// Name is the index of the allowlist entry (dns.names) that taught it.
	Name uint16
}

// Learn writes learned destinations into the data plane. When it returns
// nil every entry is in the kernel map and the next packet to it is
// judged by it. Each entry's expiry is set on the kernel's boot clock.
func (l *Loader) Learn(entries []LearnedDest) error {
	now, err := bootNow()
	if err != nil {
		return err
	}
	keys := make([]edgewardEwLearnedKey, 0, len(entries))
	values := make([]edgewardEwLearned, 0, len(entries))
	for _, e := range entries {
		if len(e.Ports) > MaxPortRanges {
			return fmt.Errorf("learn %s: %d port ranges, at most %d", e.Addr, len(e.Ports), MaxPortRanges)
		}
		v := edgewardEwLearned{Expires: uint64(now + e.Lifetime), Name: e.Name, Nranges: uint8(len(e.Ports))}
		for i, pr := range e.Ports {
			v.Ranges[i] = edgewardEwPortRange{First: pr.First, Last: pr.Last, Proto: uint8(pr.Proto), Endpoint: e.Name}
		}
		keys = append(keys, learnedKey(e.Addr))
		values = append(values, v)
	}
	if len(keys) == 0 {
		return nil
	}
	if _, err := l.objs.Learned.BatchUpdate(keys, values, nil); err != nil {
		return fmt.Errorf("write %d learned destinations: %w", len(keys), err)
	}
	return nil
}

// Forget removes learned destinations; missing ones are not an error.
func (l *Loader) Forget(addrs []netip.Addr) error {
	var errs []error
	for _, a := range addrs {
		key := learnedKey(a)
		if err := l.objs.Learned.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("forget %s: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

// LearnedDests lists the live learned destinations with the lifetime they
// have left, for a restarted daemon to rebuild its view.
func (l *Loader) LearnedDests() ([]LearnedDest, error) {
	return liveLearned(l.objs.Learned)
}

// LearnedDests lists the live learned destinations with the lifetime they
// have left, as Loader.LearnedDests does, from the pins.
func (m *Maps) LearnedDests() ([]LearnedDest, error) {
	return liveLearned(m.learned)
}

// liveLearned reads the entries of ew_learned_dests whose expiry on the
// boot clock has not passed. Expired entries stay in the map until the
// LRU reuses their room; they open nothing and are left out.
func liveLearned(m *ebpf.Map) ([]LearnedDest, error) {
	now, err := bootNow()
	if err != nil {
		return nil, err
	}
	var out []LearnedDest
	err = walk(m, func(key *edgewardEwLearnedKey, v *edgewardEwLearned) {
		left := time.Duration(v.Expires) - now
		if left <= 0 {
			return
		}
		d := LearnedDest{Addr: wordsAddr(uint8(key.Family), key.Addr), Lifetime: left, Name: v.Name}
		for _, r := range v.Ranges[:min(int(v.Nranges), MaxPortRanges)] {
			d.Ports = append(d.Ports, config.PortRange{Proto: config.Proto(r.Proto), First: r.First, Last: r.Last})
		}
		out = append(out, d)
	})
	if err != nil {
		return nil, fmt.Errorf("read learned destinations: %w", err)
	}
	return out, nil
}

func learnedKey(a netip.Addr) edgewardEwLearnedKey {
	a = a.Unmap()
	key := edgewardEwLearnedKey{Family: familyIPv6, Addr: addrWords(a)}
	if a.Is4() {
		key.Family = familyIPv4
	}
	return key
}

// bootNow reads the clock bpf_ktime_get_boot_ns() reads.
func bootNow() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("read boot clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}
