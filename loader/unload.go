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
	Mode    AttachMode
}

// Attachments lists where our programs are attached in the current network
// namespace: tcx links pinned under pinPath and our clsact filters.
func Attachments(pinPath string) ([]Attachment, error) {
	out, err := pinnedTCX(newPinLayout(pinPath))
	if err != nil {
		return nil, err
	}
	out = append(out, clsactFilters()...)
	sort.Slice(out, func(i, j int) bool { return out[i].Ifindex < out[j].Ifindex })
	return out, nil
}

// pinnedTCX lists the live tcx links pinned under the layout.
func pinnedTCX(p pinLayout) ([]Attachment, error) {
	entries, err := os.ReadDir(p.links)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list link pins: %w", err)
	}

	var out []Attachment
	for _, e := range entries {
		lk, err := link.LoadPinnedLink(filepath.Join(p.links, e.Name()), nil)
		if err != nil {
			continue
		}
		info, err := lk.Info()
		lk.Close()
		if err != nil || info.TCX() == nil || info.TCX().Ifindex == 0 {
			continue
		}
		idx := int(info.TCX().Ifindex)
		out = append(out, Attachment{Ifindex: idx, Name: ifaceName(idx), Mode: ModeTCX})
	}
	return out, nil
}

// clsactFilters lists the interfaces that carry our cls_bpf filter.
func clsactFilters() []Attachment {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}

	var out []Attachment
	for _, lk := range links {
		filters, err := netlink.FilterList(lk, netlink.HANDLE_MIN_EGRESS)
		if err != nil {
			continue
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, clsactFilterName) {
				out = append(out, Attachment{Ifindex: lk.Attrs().Index, Name: lk.Attrs().Name, Mode: ModeClsact})
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
// network namespace: tcx links pinned under pinPath, our clsact filters, and
// all pins (maps and programs go away with their last reference). It is the
// only way enforcement ends. Unloading what is not loaded is not an error.
func Unload(pinPath string) error {
	p := newPinLayout(pinPath)
	var errs []error

	if err := detachPinnedLinks(p); err != nil {
		errs = append(errs, err)
	}
	for _, a := range clsactFilters() {
		if err := removeClsactFilter(a.Ifindex); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(p.root); err != nil {
		errs = append(errs, fmt.Errorf("remove pins under %s: %w", p.root, err))
	}
	return errors.Join(errs...)
}

// detachPinnedLinks detaches each pinned tcx link. Detaching, not only
// unpinning, matters: a daemon still running would otherwise keep the link
// alive through its file descriptor.
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
		path := filepath.Join(p.links, e.Name())
		lk, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("open link pin %s: %w", path, err))
			continue
		}
		if err := lk.Detach(); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("detach %s: %w", path, err))
		}
		lk.Unpin()
		lk.Close()
	}
	return errors.Join(errs...)
}
