package main

import (
	"fmt"
	"io"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/intercept"
	"github.com/edgeward/edgeward/internal/cgroupfs"
	"github.com/edgeward/edgeward/loader"
)

// cmdUnload ends enforcement: it stops a running daemon, detaches every
// program of Edgeward in the current network namespace and the socket
// guard pinned with them, and removes its pins. Run it in the namespace
// the daemon enforces (ip netns exec NS edgeward unload -c FILE).
func cmdUnload(args []string, stdout, stderr io.Writer) int {
	f := newFlags("unload", stderr)
	if status, ok := f.parse(args); !ok {
		return status
	}
	cfg, ok := f.loadConfig(stderr)
	if !ok {
		return exitUsage
	}

	// A daemon left running would report enforcement it no longer has.
	if stopDaemon(cfg.Paths.Socket) {
		fmt.Fprintln(stdout, "stopped the running edgeward daemon")
	}

	before, _ := loader.Attachments(cfg.Paths.BPFFS)
	guard, _ := loader.GuardAttachments(cfg.Paths.BPFFS)
	if err := loader.Unload(cfg.Paths.BPFFS); err != nil {
		fmt.Fprintf(stderr, "edgeward unload: %v\n", err)
		return exitFailure
	}
	for _, a := range before {
		fmt.Fprintf(stdout, "detached %s (%s) from %s\n", a.Hook, a.Mode, a.Name)
	}
	for _, g := range guard {
		fmt.Fprintf(stdout, "detached the socket guard (%s) from %s\n", g.Hook, cgroupName(cfg, g.CgroupID))
	}
	installed, _ := intercept.Installed()
	if err := intercept.Remove(); err != nil {
		fmt.Fprintf(stderr, "edgeward unload: %v\n", err)
		return exitFailure
	}
	if installed {
		fmt.Fprintln(stdout, "removed the transparent DNS rules (iptables chains EDGEWARD-DNS-*)")
	}
	fmt.Fprintf(stdout, "removed pins under %s; nothing of Edgeward enforces here now\n", cfg.Paths.BPFFS)
	return exitOK
}

// cgroupName names the cgroup with id: paths.cgroup when it is that one,
// else by its id.
func cgroupName(cfg *config.Config, id uint64) string {
	if dir, err := cfg.GuardCgroup(); err == nil {
		if own, err := cgroupfs.ID(dir); err == nil && own == id {
			return "cgroup " + dir
		}
	}
	if id == 0 {
		return "a cgroup that is gone"
	}
	return fmt.Sprintf("cgroup id %d", id)
}
