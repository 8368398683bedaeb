package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/edgeward/edgeward/internal/cgroupfs"
)

// GuardHook is where the socket guard is attached to a cgroup.
type GuardHook string

// The hooks of the socket guard.
const (
	// GuardSetsockopt refuses PACKET_QDISC_BYPASS and SOL_XDP options
	// (cgroup/setsockopt).
	GuardSetsockopt GuardHook = "setsockopt"
)

// guardHook is one program of the socket guard and its attach type.
type guardHook struct {
	hook   GuardHook
	attach ebpf.AttachType
	prog   *ebpf.Program
}

func (l *Loader) guardHooks() []guardHook {
	return []guardHook{{GuardSetsockopt, ebpf.AttachCGroupSetsockopt, l.objs.GuardSockopt}}
}

// newPinSuffix marks the pin of a link attached to a new cgroup while the
// link to the old one is still pinned under the final name.
const newPinSuffix = "_new" // bpffs refuses names with a dot

// AttachSocketGuard attaches the socket guard to the cgroup v2 directory
// dir: its processes, and those of every cgroup below it, get EPERM when
// they set PACKET_QDISC_BYPASS or a SOL_XDP option (sockets that would
// send around tc egress), and every refusal is counted under HookSocket.
// In audit mode the options pass and are counted as audit.
//
// The links are pinned under guard/ in the pin directory. A link pinned
// by an earlier run for the same cgroup is updated in place
// (BPF_LINK_UPDATE): no moment without the guard and never a second
// attachment. A link pinned for another cgroup (paths.cgroup changed) is
// detached once the new one is attached. The cgroup is judged by the
// socket: a socket created outside it is not guarded, wherever it is used.
func (l *Loader) AttachSocketGuard(dir string) error {
	if err := cgroupfs.Check(dir); err != nil {
		return fmt.Errorf("attach socket guard: %w", err)
	}
	id, err := cgroupfs.ID(dir)
	if err != nil {
		return fmt.Errorf("attach socket guard: %w", err)
	}

	for _, h := range l.guardHooks() {
		if err := l.attachGuardHook(dir, id, h); err != nil {
			return fmt.Errorf("attach socket guard (%s) to %s: %w", h.hook, dir, err)
		}
	}
	return nil
}

// guardPin is where the link of a guard hook is pinned.
func (l *Loader) guardPin(h GuardHook) string {
	return filepath.Join(l.pins.guard, string(h))
}

// attachGuardHook adopts or creates the link of one hook on the cgroup
// with id cgroupID at dir.
func (l *Loader) attachGuardHook(dir string, cgroupID uint64, h guardHook) error {
	pin := l.guardPin(h.hook)
	// A pin under the new name was left by a run that died while moving
	// the guard: kept if it guards this cgroup (the move goes on from
	// there, with no gap), else a second attachment, which goes first.
	moving, err := adoptGuardLink(pin+newPinSuffix, cgroupID, h.prog)
	if err != nil {
		return err
	}
	if !moving {
		if err := detachPinned(pin + newPinSuffix); err != nil {
			return err
		}
		adopted, err := adoptGuardLink(pin, cgroupID, h.prog)
		if adopted || err != nil {
			return err
		}
		lk, err := link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: h.attach, Program: h.prog})
		if err != nil {
			return err
		}
		if err := pinAndClose(lk, pin+newPinSuffix); err != nil {
			return err
		}
	}
	if err := detachPinned(pin); err != nil {
		return err
	}
	if err := os.Rename(pin+newPinSuffix, pin); err != nil {
		return fmt.Errorf("rename link pin: %w", err)
	}
	return nil
}

// adoptGuardLink updates the link pinned at pin to prog if it is attached
// to the cgroup with id cgroupID.
func adoptGuardLink(pin string, cgroupID uint64, prog *ebpf.Program) (bool, error) {
	return adoptPinned(pin, prog, func(lk link.Link) bool { return linkCgroupID(lk) == cgroupID })
}

// linkCgroupID is the cgroup a cgroup link is attached to, 0 when it was
// detached or its cgroup was removed.
func linkCgroupID(lk link.Link) uint64 {
	info, err := lk.Info()
	if err != nil || info.Cgroup() == nil {
		return 0
	}
	return info.Cgroup().CgroupId
}

// GuardHolds tells whether every hook of the socket guard is pinned and
// attached to the cgroup at dir now: a link someone detached, or a cgroup
// removed since the guard was attached, reads as false.
func (l *Loader) GuardHolds(dir string) bool {
	id, err := cgroupfs.ID(dir)
	if err != nil {
		return false
	}
	attached, err := GuardAttachments(l.pins.root)
	if err != nil {
		return false
	}
	holding := 0
	for _, a := range attached {
		if a.CgroupID == id {
			holding++
		}
	}
	return holding == len(l.guardHooks())
}

// GuardAttachment is a hook of the socket guard found pinned.
type GuardAttachment struct {
	Hook GuardHook
	// CgroupID is the cgroup it is attached to (cgroupfs.ID of its
	// directory); 0 when it was detached or its cgroup is gone.
	CgroupID uint64
}

// GuardAttachments lists the hooks of the socket guard pinned under
// pinPath, in the current mount namespace's view of the pins.
func GuardAttachments(pinPath string) ([]GuardAttachment, error) {
	dir := newPinLayout(pinPath).guard
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list socket guard pins: %w", err)
	}

	var out []GuardAttachment
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), newPinSuffix) {
			continue
		}
		lk, err := link.LoadPinnedLink(filepath.Join(dir, e.Name()), nil)
		if err != nil {
			continue
		}
		out = append(out, GuardAttachment{Hook: GuardHook(e.Name()), CgroupID: linkCgroupID(lk)})
		lk.Close()
	}
	return out, nil
}

// detachGuard detaches and unpins every link of the socket guard.
func detachGuard(p pinLayout) error {
	entries, err := os.ReadDir(p.guard)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list socket guard pins: %w", err)
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, detachPinned(filepath.Join(p.guard, e.Name())))
	}
	return errors.Join(errs...)
}
