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
	// ModeXDPNative is an XDP link in the driver, pinned under links/.
	ModeXDPNative AttachMode = "xdp-native"
	// ModeXDPGeneric is an XDP link in the generic (skb) path, for drivers
	// without native XDP: correct, but without the early-drop savings.
	ModeXDPGeneric AttachMode = "xdp-generic"
)

// Role is what Edgeward does on an interface; it mirrors enum ew_role.
type Role uint32

// Roles of interfaces.
const (
	RoleUplink   Role = 0
	RoleVPN      Role = 1
	RoleLAN      Role = 2
	RoleIgnore   Role = 3
	RoleLoopback Role = 4
)

// Our cls_bpf filters: a fixed handle and priority so that a restart
// replaces them in place instead of adding a second one.
const (
	clsactFilterPrefix = "edgeward_"
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

// Attached is one of our programs on one interface.
type Attached struct {
	Hook Hook
	Mode AttachMode
}

// direction of a tc attachment.
type direction int

const (
	egress direction = iota
	ingress
)

// hookPlan is one program to put on an interface, and where.
type hookPlan struct {
	hook Hook
	prog *ebpf.Program
	xdp  bool
	dir  direction // tc only
}

// plan returns the hooks an interface of role needs. LAN interfaces
// without an Ethernet header get none: xdp_lan expects Ethernet frames.
func (l *Loader) plan(iface Interface, role Role) ([]hookPlan, error) {
	switch role {
	case RoleUplink:
		if iface.L3 {
			return []hookPlan{
				{hook: HookTCEgress, prog: l.objs.TCEgressL3, dir: egress},
				{hook: HookUplinkIngress, prog: l.objs.TCIngressL3, dir: ingress},
			}, nil
		}
		return []hookPlan{
			{hook: HookTCEgress, prog: l.objs.TCEgressEth, dir: egress},
			{hook: HookUplinkIngress, prog: l.objs.XDPUplink, xdp: true},
		}, nil
	case RoleLAN:
		if iface.L3 {
			return nil, fmt.Errorf("LAN interface %s has no Ethernet header: not supported", iface.Name)
		}
		return []hookPlan{{hook: HookXDPLAN, prog: l.objs.XDPLAN, xdp: true}}, nil
	}
	return nil, nil
}

// Attach puts on iface the programs its role needs and removes any other
// program of ours from it (left by a configuration that gave it another
// role). It tells the data plane the interface's role first, so a LAN
// host's packet routed to it is judged right from the start.
//
// tc programs use tcx where the kernel has it and clsact otherwise; XDP
// programs run in the driver where it can, in generic mode otherwise. An
// attachment pinned by an earlier run is updated in place: there is no
// moment without a program and never a second attachment. On error, what
// was attached stays attached.
func (l *Loader) Attach(iface Interface, role Role) ([]Attached, error) {
	if err := l.objs.Ifaces.Put(uint32(iface.Index), uint32(role)); err != nil {
		return nil, fmt.Errorf("record role of %s: %w", iface.Name, err)
	}
	plans, err := l.plan(iface, role)
	if err != nil {
		return nil, err
	}

	var out []Attached
	keep := map[Hook]bool{}
	for _, p := range plans {
		mode, err := l.attachOne(iface, p)
		if err != nil {
			return out, fmt.Errorf("attach %s to %s: %w", p.hook, iface.Name, err)
		}
		keep[p.hook] = true
		out = append(out, Attached{Hook: p.hook, Mode: mode})
	}
	return out, l.detachExcept(iface.Index, keep)
}

func (l *Loader) attachOne(iface Interface, p hookPlan) (AttachMode, error) {
	if p.xdp {
		return l.attachXDP(iface, p)
	}
	if !l.opts.ForceClsact {
		err := l.attachTCX(iface, p)
		if err == nil {
			// A filter of an earlier run in clsact mode would judge
			// every packet a second time.
			return ModeTCX, removeClsactFilters(iface.Index, p.dir, otherHooks(p.hook))
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return "", err
		}
	}
	if err := attachClsact(iface, p); err != nil {
		return "", err
	}
	return ModeClsact, detachPinned(l.linkPin(iface.Index, p.hook))
}

// otherHooks is a keep-set of every hook but h.
func otherHooks(h Hook) map[Hook]bool {
	keep := map[Hook]bool{HookTCEgress: true, HookUplinkIngress: true, HookXDPLAN: true}
	delete(keep, h)
	return keep
}

// linkPin is where the link of a hook on an interface is pinned.
func (l *Loader) linkPin(ifindex int, hook Hook) string {
	return filepath.Join(l.pins.links, strconv.Itoa(ifindex)+"_"+hook.String())
}

// attachTCX updates the pinned link of the hook if there is one for this
// very interface, or creates and pins a new one.
func (l *Loader) attachTCX(iface Interface, p hookPlan) error {
	pin := l.linkPin(iface.Index, p.hook)
	if adopted, err := adoptLink(pin, iface.Index, p.prog); adopted || err != nil {
		return err
	}

	attach := ebpf.AttachTCXEgress
	if p.dir == ingress {
		attach = ebpf.AttachTCXIngress
	}
	lk, err := link.AttachTCX(link.TCXOptions{Interface: iface.Index, Program: p.prog, Attach: attach})
	if err != nil {
		return err
	}
	return pinAndClose(lk, pin)
}

// attachXDP is attachTCX for XDP: driver mode first, generic mode when the
// driver has no XDP.
func (l *Loader) attachXDP(iface Interface, p hookPlan) (AttachMode, error) {
	pin := l.linkPin(iface.Index, p.hook)
	adopted, err := adoptLink(pin, iface.Index, p.prog)
	if err != nil {
		return "", err
	}
	if adopted {
		// A link pinned by an earlier daemon: the kernel knows its mode.
		if _, ok := l.xdpModes[iface.Index]; !ok {
			l.xdpModes[iface.Index] = xdpMode(iface.Index)
		}
		return l.xdpModes[iface.Index], nil
	}

	mode, err := ModeXDPNative, error(nil)
	var lk link.Link
	if !l.opts.XDPGeneric {
		lk, err = link.AttachXDP(link.XDPOptions{Program: p.prog, Interface: iface.Index, Flags: link.XDPDriverMode})
	}
	if l.opts.XDPGeneric || err != nil {
		mode = ModeXDPGeneric
		lk, err = link.AttachXDP(link.XDPOptions{Program: p.prog, Interface: iface.Index, Flags: link.XDPGenericMode})
	}
	if err != nil {
		return "", err
	}
	l.xdpModes[iface.Index] = mode
	return mode, pinAndClose(lk, pin)
}

// pinAndClose pins a new link and drops our descriptor; the pin keeps
// the link. When pinning fails, closing the descriptor detaches it again.
func pinAndClose(lk link.Link, pin string) error {
	defer lk.Close()
	if err := lk.Pin(pin); err != nil {
		return fmt.Errorf("pin link at %s: %w", pin, err)
	}
	return nil
}

// adoptLink updates the link pinned at pin to prog if it still belongs to
// ifindex. A pin left by an interface that is gone (its index maybe
// reused) is removed and adopted is false.
func adoptLink(pin string, ifindex int, prog *ebpf.Program) (adopted bool, err error) {
	adopted, err = adoptPinned(pin, prog, func(lk link.Link) bool { return linkIfindex(lk) == ifindex })
	if adopted || err != nil {
		return adopted, err
	}
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("remove stale link pin %s: %w", pin, err)
	}
	return false, nil
}

// adoptPinned updates the link pinned at pin to prog when owns says it is
// still attached where the caller wants it (BPF_LINK_UPDATE: no moment
// without a program, never a second attachment). It returns false, and
// leaves the pin to the caller, when nothing is pinned there or the link
// is attached elsewhere.
func adoptPinned(pin string, prog *ebpf.Program, owns func(link.Link) bool) (bool, error) {
	lk, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load pinned link %s: %w", pin, err)
	}
	defer lk.Close()

	if !owns(lk) {
		return false, nil
	}
	if err := lk.Update(prog); err != nil {
		return false, fmt.Errorf("update pinned link %s: %w", pin, err)
	}
	return true, nil
}

// linkIfindex is the interface a tcx or XDP link is attached to, 0 when it
// is detached (its interface went away).
func linkIfindex(lk link.Link) int {
	info, err := lk.Info()
	if err != nil {
		return 0
	}
	if tcx := info.TCX(); tcx != nil {
		return int(tcx.Ifindex)
	}
	if xdp := info.XDP(); xdp != nil {
		return int(xdp.Ifindex)
	}
	return 0
}

// attachClsact adds a clsact qdisc if there is none and puts our filter on
// the hook's side of it, replacing our earlier filter atomically.
func attachClsact(iface Interface, p hookPlan) error {
	qdisc := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: iface.Index,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
	if err := netlink.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact qdisc: %w", err)
	}

	filter := &netlink.BpfFilter{
		FilterAttrs:  clsactFilterAttrs(iface.Index, p.dir),
		Fd:           p.prog.FD(),
		Name:         clsactFilterPrefix + p.hook.String(),
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("replace filter: %w", err)
	}
	return nil
}

func clsactParent(dir direction) uint32 {
	if dir == ingress {
		return netlink.HANDLE_MIN_INGRESS
	}
	return netlink.HANDLE_MIN_EGRESS
}

func clsactFilterAttrs(ifindex int, dir direction) netlink.FilterAttrs {
	return netlink.FilterAttrs{
		LinkIndex: ifindex,
		Parent:    clsactParent(dir),
		Handle:    netlink.MakeHandle(0, clsactFilterHandle),
		Protocol:  unix.ETH_P_ALL,
		Priority:  clsactFilterPrio,
	}
}

// Detach removes every program of ours from the interface with index
// ifindex and forgets its role. The interface may already be gone.
func (l *Loader) Detach(ifindex int) error {
	err := l.detachExcept(ifindex, nil)
	if derr := l.objs.Ifaces.Delete(uint32(ifindex)); derr != nil && !errors.Is(derr, ebpf.ErrKeyNotExist) {
		err = errors.Join(err, fmt.Errorf("forget role of interface %d: %w", ifindex, derr))
	}
	delete(l.xdpModes, ifindex)
	return err
}

// detachExcept removes our programs from an interface but those of the
// hooks in keep.
func (l *Loader) detachExcept(ifindex int, keep map[Hook]bool) error {
	var errs []error
	for _, hook := range []Hook{HookTCEgress, HookUplinkIngress, HookXDPLAN} {
		if keep[hook] {
			continue
		}
		if err := detachPinned(l.linkPin(ifindex, hook)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, dir := range []direction{egress, ingress} {
		if err := removeClsactFilters(ifindex, dir, keep); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// detachPinned detaches and unpins the link pinned at pin, if any.
// Detaching, not only unpinning, matters: a daemon still running would
// otherwise keep the link alive through its file descriptor.
func detachPinned(pin string) error {
	lk, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open link pin %s: %w", pin, err)
	}
	defer lk.Close()

	if err := lk.Detach(); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOLINK) {
		return fmt.Errorf("detach %s: %w", pin, err)
	}
	return lk.Unpin()
}

// removeClsactFilters deletes our cls_bpf filters on one side of an
// interface (but those of hooks in keep), and the clsact qdisc when it is
// left empty.
func removeClsactFilters(ifindex int, dir direction, keep map[Hook]bool) error {
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil // the interface is gone, and its filters with it
	}
	filters, err := netlink.FilterList(lk, clsactParent(dir))
	if err != nil {
		return nil // no clsact qdisc
	}

	for _, f := range filters {
		bf, ok := f.(*netlink.BpfFilter)
		if !ok || !strings.HasPrefix(bf.Name, clsactFilterPrefix) || keep[hookOfFilter(bf.Name)] {
			continue
		}
		if err := netlink.FilterDel(bf); err != nil {
			return fmt.Errorf("remove filter from %s: %w", lk.Attrs().Name, err)
		}
	}
	return deleteEmptyClsact(lk)
}

func hookOfFilter(name string) Hook {
	switch strings.TrimPrefix(name, clsactFilterPrefix) {
	case HookUplinkIngress.String():
		return HookUplinkIngress
	case HookXDPLAN.String():
		return HookXDPLAN
	}
	return HookTCEgress
}

// deleteEmptyClsact removes the clsact qdisc when neither side has a
// filter left.
func deleteEmptyClsact(lk netlink.Link) error {
	for _, dir := range []direction{egress, ingress} {
		filters, err := netlink.FilterList(lk, clsactParent(dir))
		if err != nil || len(filters) > 0 {
			return nil
		}
	}
	qdisc := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: lk.Attrs().Index,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
	if err := netlink.QdiscDel(qdisc); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("remove clsact qdisc from %s: %w", lk.Attrs().Name, err)
	}
	return nil
}

// SetRole records an interface's role for the data plane without touching
// the interface: the LAN hook asks it where a routed packet would leave.
// Use it for ignored interfaces and loopback; Attach records it itself.
func (l *Loader) SetRole(ifindex int, role Role) error {
	if err := l.objs.Ifaces.Put(uint32(ifindex), uint32(role)); err != nil {
		return fmt.Errorf("record role of interface %d: %w", ifindex, err)
	}
	return nil
}
