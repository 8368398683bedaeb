package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeward/edgeward/internal/testcgroup"
)

// ownerFile names the file in Dir that records which process owns the
// sandbox: "PID STARTTIME" as in /proc/PID/stat.
const ownerFile = "owner"

// dirPrefix starts the name of every sandbox's Dir in os.TempDir.
const dirPrefix = "edgeward-sandbox-"

// writeOwner records the current process as the sandbox's owner.
func writeOwner(dir string) error {
	start, err := processStart(os.Getpid())
	if err != nil {
		return err
	}
	data := fmt.Sprintf("%d %s\n", os.Getpid(), start)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(data), 0o600); err != nil {
		return fmt.Errorf("write owner: %w", err)
	}
	return nil
}

// processStart returns a process's start time in clock ticks since boot,
// which tells a live owner from a new process that reuses its PID.
func processStart(pid int) (string, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}

	// Fields after the command name, which may hold spaces, start at 3.
	_, rest, _ := strings.Cut(string(stat), ") ")
	fields := strings.Fields(rest)
	if len(fields) < 20 {
		return "", fmt.Errorf("process %d: short stat line", pid)
	}
	return fields[19], nil
}

// stale reports whether dir belongs to a sandbox whose owner died. A
// folder that vanished belongs to a sandbox that closed meanwhile; one
// without an owner file is stale only after a minute, since its sandbox
// may still be starting.
func stale(dir string) bool {
	info, err := os.Stat(dir)
	if err != nil {
		return false
	}

	data, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return time.Since(info.ModTime()) > time.Minute
	}

	var pid int
	var start string
	if _, err := fmt.Sscan(string(data), &pid, &start); err != nil {
		return true
	}
	now, err := processStart(pid)
	return err != nil || now != start
}

// SweepStale removes what sandboxes of test processes that died without
// Close left behind (a test binary killed by -timeout runs no cleanup):
// their namespaces, WireGuard sockets, cgroups, bpffs mounts and folders. Their
// daemons already got SIGKILL when the test binary died. Sandboxes whose
// owner still runs are left alone, so it is safe to call from TestMain
// while other test processes run. It returns the ids it swept.
func SweepStale() ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("find sandbox folders: %w", err)
	}

	var swept []string
	var errs []error
	for _, dir := range dirs {
		id, ok := idFromDir(dir)
		if !ok || !stale(dir) {
			continue
		}
		errs = append(errs, sweep(id, dir))
		swept = append(swept, id)
	}
	return swept, errors.Join(errs...)
}

// idFromDir extracts the id from a folder named edgeward-sandbox-ID-RANDOM.
func idFromDir(dir string) (string, bool) {
	rest := strings.TrimPrefix(filepath.Base(dir), dirPrefix)
	id, _, ok := strings.Cut(rest, "-")
	return id, ok && len(id) == 4
}

// sweep removes one dead sandbox's leftovers.
func sweep(id, dir string) error {
	s := &Sandbox{
		ID:        id,
		Dir:       dir,
		BPFFS:     filepath.Join(dir, "bpffs"),
		wgGateway: wgGatewayName(id),
		wgVPC:     wgVPCName(id),
		mounted:   true,
	}

	errs := []error{s.removeWGSockets()}
	for _, h := range hosts {
		errs = append(errs, deleteNamespace(nsName(id, h)))
	}
	errs = append(errs, testcgroup.RemoveStale(cgroupName(id), filepath.Join(dir, "cgroup")))
	errs = append(errs, s.removeFolders())
	return errors.Join(errs...)
}
