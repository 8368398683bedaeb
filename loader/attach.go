package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AttachMode says how a program is attached to an interface.
type AttachMode string

const (
	// ModeTCX is a tcx link (Linux 6.6 and later), pinned under links/.
	ModeTCX AttachMode = "tcx"
	// ModeClsact is a cls_bpf filter on a clsact qdisc; it lives in the
	// qdisc, not in a pin.
	ModeClsact AttachMode = "clsact"
)

// Our cls_bpf filter: a fixed handle and priority so that a restart
// replaces it in place instead of adding a second one.
const (
	clsactFilterName   = "edgeward_egress"
	clsactFilterHandle = 0xe3d0
	clsactFilterPrio   = 1
)

// Interface is an interface to enforce.
type Interface struct {
	Index int
	Name  string
	// L3 is set for devices whose packets have no Ethernet header (TUN,
	// raw-IP modems, PPP).
	L3 bool
}

// attachment is the program on one interface's egress.
type attachment struct {
	mode AttachMode
	link link.Link // tcx only
}

func (a *attachment) close() {
	if a.link != nil {
		a.link.Close()
	}
}

// Attach enforces the policy on the egress of iface. It prefers tcx and falls
// back to clsact where tcx is missing. An existing attachment of ours, pinned
// by an earlier run, is updated in place: there is no moment without a
// program and never a second attachment.
func (l *Loader) Attach(iface Interface) (AttachMode, error) {
	prog := l.objs.TCEgressEth
	if iface.L3 {
		prog = l.objs.TCEgressL3
	}

	if !l.opts.ForceClsact {
		a, err := l.attachTCX(iface, prog)
		if err == nil {
			l.replace(iface.Index, a)
			return ModeTCX, nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return "", fmt.Errorf("attach tcx to %s: %w", iface.Name, err)
		}
	}

	if err := attachClsact(iface, prog); err != nil {
		return "", fmt.Errorf("attach clsact to %s: %w", iface.Name, err)
	}
	l.replace(iface.Index, &attachment{mode: ModeClsact})
	return ModeClsact, nil
}

func (l *Loader) replace(ifindex int, a *attachment) {
	if old := l.links[ifindex]; old != nil {
		old.close()
	}
	l.links[ifindex] = a
}

// linkPin is where the tcx link of an interface is pinned.
func (l *Loader) linkPin(ifindex int) string {
	return filepath.Join(l.pins.links, "tcx_egress_"+strconv.Itoa(ifindex))
}

// attachTCX updates the pinned link of iface if there is one for this very
// interface, or creates and pins a new one.
func (l *Loader) attachTCX(iface Interface, prog *ebpf.Program) (*attachment, error) {
	pin := l.linkPin(iface.Index)
	if lk, err := adoptTCX(pin, iface.Index); err != nil {
		return nil, err
	} else if lk != nil {
		if err := lk.Update(prog); err != nil {
			lk.Close()
			return nil, fmt.Errorf("update pinned link: %w", err)
		}
		return &attachment{mode: ModeTCX, link: lk}, nil
	}

	lk, err := link.AttachTCX(link.TCXOptions{
		Interface: iface.Index,
		Program:   prog,
		Attach:    ebpf.AttachTCXEgress,
	})
	if err != nil {
		return nil, err
	}
	if err := lk.Pin(pin); err != nil {
		lk.Close()
		return nil, fmt.Errorf("pin link: %w", err)
	}
	return &attachment{mode: ModeTCX, link: lk}, nil
}

// adoptTCX opens the link pinned at pin if it still belongs to ifindex. A
// pin left by an interface that is gone (its index maybe reused) is removed.
func adoptTCX(pin string, ifindex int) (link.Link, error) {
	lk, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load pinned link %s: %w", pin, err)
	}

	info, err := lk.Info()
	if err == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
		return lk, nil
	}
	lk.Unpin()
	lk.Close()
	return nil, nil
}

// attachClsact adds a clsact qdisc if there is none and puts our filter on
// its egress side, replacing our earlier filter atomically.
func attachClsact(iface Interface, prog *ebpf.Program) error {
	qdisc := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: iface.Index,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
	if err := netlink.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact qdisc: %w", err)
	}

	filter := &netlink.BpfFilter{
		FilterAttrs:  clsactFilterAttrs(iface.Index),
		Fd:           prog.FD(),
		Name:         clsactFilterName,
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("replace filter: %w", err)
	}
	return nil
}

func clsactFilterAttrs(ifindex int) netlink.FilterAttrs {
	return netlink.FilterAttrs{
		LinkIndex: ifindex,
		Parent:    netlink.HANDLE_MIN_EGRESS,
		Handle:    netlink.MakeHandle(0, clsactFilterHandle),
		Protocol:  unix.ETH_P_ALL,
		Priority:  clsactFilterPrio,
	}
}

// Detach removes our program from the egress of the interface with index
// ifindex. The interface may already be gone.
func (l *Loader) Detach(ifindex int) error {
	a := l.links[ifindex]
	delete(l.links, ifindex)
	if a != nil {
		a.close()
	}

	pin := l.linkPin(ifindex)
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove link pin: %w", err)
	}
	return removeClsactFilter(ifindex)
}

// removeClsactFilter deletes our cls_bpf filter from an interface, and the
// clsact qdisc when nothing else uses it.
func removeClsactFilter(ifindex int) error {
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil // the interface is gone, and the filter with it
	}

	filters, err := netlink.FilterList(lk, netlink.HANDLE_MIN_EGRESS)
	if err != nil {
		return nil // no clsact qdisc
	}
	remaining := 0
	for _, f := range filters {
		bf, ok := f.(*netlink.BpfFilter)
		if !ok || !strings.HasPrefix(bf.Name, clsactFilterName) {
			remaining++
			continue
		}
		if err := netlink.FilterDel(bf); err != nil {
			return fmt.Errorf("remove filter from %s: %w", lk.Attrs().Name, err)
		}
	}
	if remaining > 0 {
		return nil
	}
	return deleteEmptyClsact(lk)
}

// deleteEmptyClsact removes the clsact qdisc if its ingress side is empty as
// well.
func deleteEmptyClsact(lk netlink.Link) error {
	ingress, err := netlink.FilterList(lk, netlink.HANDLE_MIN_INGRESS)
	if err != nil || len(ingress) > 0 {
		return nil
	}
	qdisc := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: lk.Attrs().Index,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
	if err := netlink.QdiscDel(qdisc); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove clsact qdisc from %s: %w", lk.Attrs().Name, err)
	}
	return nil
}
