package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// Attachment is one of our programs found attached in the kernel.
type Attachment struct {
	Ifindex int
	Name    string
	Hook    Hook
	Mode    AttachMode
}

// Attachments lists where our programs are attached in the current network
// namespace: the links pinned under pinPath and our clsact filters.
func Attachments(pinPath string) ([]Attachment, error) {
	out, err := pinnedLinks(newPinLayout(pinPath))
	if err != nil {
		return nil, err
	}
	out = append(out, clsactFilters()...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ifindex != out[j].Ifindex {
			return out[i].Ifindex < out[j].Ifindex
		}
		return out[i].Hook < out[j].Hook
	})
	return out, nil
}

// pinnedLinks lists the live links pinned under the layout.
func pinnedLinks(p pinLayout) ([]Attachment, error) {
	entries, err := os.ReadDir(p.links)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list link pins: %w", err)
	}

	var out []Attachment
	for _, e := range entries {
		if a, ok := pinnedLink(filepath.Join(p.links, e.Name())); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// pinnedLink describes the link pinned at path, if it is still attached.
func pinnedLink(path string) (Attachment, bool) {
	lk, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return Attachment{}, false
	}
	defer lk.Close()

	idx := linkIfindex(lk)
	if idx == 0 {
		return Attachment{}, false
	}
	a := Attachment{Ifindex: idx, Name: ifaceName(idx), Hook: hookOfPin(filepath.Base(path)), Mode: ModeTCX}
	if info, err := lk.Info(); err == nil && info.XDP() != nil {
		a.Mode = xdpMode(idx)
	}
	return a, true
}

// hookOfPin reads the hook from a pin name "<ifindex>_<hook>".
func hookOfPin(name string) Hook {
	_, hook, _ := strings.Cut(name, "_")
	for _, h := range []Hook{HookTCEgress, HookXDPLAN, HookUplinkIngress} {
		if h.String() == hook {
			return h
		}
	}
	return HookTCEgress
}

// xdpAttachedSKB is XDP_ATTACHED_SKB of linux/if_link.h: an XDP program
// in generic mode.
const xdpAttachedSKB = 2

// xdpMode asks the kernel whether the XDP program of an interface runs in
// the driver or in generic mode.
func xdpMode(ifindex int) AttachMode {
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil || lk.Attrs().Xdp == nil {
		return ModeXDPNative
	}
	if lk.Attrs().Xdp.AttachMode == xdpAttachedSKB {
		return ModeXDPGeneric
	}
	return ModeXDPNative
}

// clsactFilters lists our cls_bpf filters on every interface.
func clsactFilters() []Attachment {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}

	var out []Attachment
	for _, lk := range links {
		for _, dir := range []direction{egress, ingress} {
			filters, err := netlink.FilterList(lk, clsactParent(dir))
			if err != nil {
				continue
			}
			for _, f := range filters {
				bf, ok := f.(*netlink.BpfFilter)
				if !ok || !strings.HasPrefix(bf.Name, clsactFilterPrefix) {
					continue
				}
				out = append(out, Attachment{
					Ifindex: lk.Attrs().Index, Name: lk.Attrs().Name,
					Hook: hookOfFilter(bf.Name), Mode: ModeClsact,
				})
			}
		}
	}
	return out
}

func ifaceName(idx int) string {
	lk, err := netlink.LinkByIndex(idx)
	if err != nil {
		return fmt.Sprintf("if%d", idx)
	}
	return lk.Attrs().Name
}

// Unload removes every trace of Edgeward from the kernel in the current
// network namespace: the links pinned under pinPath (interfaces and the
// socket guard's cgroup), our clsact filters, and all pins (maps and
// programs go away with their last reference). It is the only way
// enforcement ends. Unloading what is not loaded is not an error.
func Unload(pinPath string) error {
	p := newPinLayout(pinPath)
	var errs []error

	if err := detachPinnedLinks(p); err != nil {
		errs = append(errs, err)
	}
	if err := detachGuard(p); err != nil {
		errs = append(errs, err)
	}
	for _, a := range clsactFilters() {
		for _, dir := range []direction{egress, ingress} {
			if err := removeClsactFilters(a.Ifindex, dir, nil); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := os.RemoveAll(p.root); err != nil {
		errs = append(errs, fmt.Errorf("remove pins under %s: %w", p.root, err))
	}
	return errors.Join(errs...)
}

// detachPinnedLinks detaches every pinned link.
func detachPinnedLinks(p pinLayout) error {
	entries, err := os.ReadDir(p.links)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list link pins: %w", err)
	}

	var errs []error
	for _, e := range entries {
		if err := detachPinned(filepath.Join(p.links, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
