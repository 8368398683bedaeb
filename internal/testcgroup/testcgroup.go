// Package testcgroup gives tests, the demo and the benchmarks cgroup v2
// directories of their own for Edgeward's socket guard, so that none of
// them ever attaches to a cgroup it did not create. The default of
// paths.cgroup, the root of the hierarchy, is every process of the
// machine: a test that left paths.cgroup out would guard the host.
//
// A cgroup is made below the hierarchy's root (from /proc/self/mountinfo)
// and bind-mounted to a folder of the caller's, outside /sys: `ip netns
// exec`, which starts the daemon in tests, mounts a fresh /sys without the
// cgroup file systems, while mounts elsewhere stay visible.
package testcgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/cgroupfs"
)

// Prefix starts the name of every cgroup this package makes.
const Prefix = "edgeward-"

// Cgroup is a cgroup v2 directory made for one test, demo or benchmark.
// Remove it when done; until then it exists on the machine.
type Cgroup struct {
	// Path is where configurations point paths.cgroup: the bind mount,
	// or Dir when there is none.
	Path string
	// Dir is the cgroup under the hierarchy's mount.
	Dir string
	// bound is set while Path is a bind mount of Dir.
	bound bool
}

// New makes the cgroup Prefix+name below the root of the cgroup v2
// hierarchy and, unless mountAt is empty, bind-mounts it at mountAt
// (created). The name must be unique on the machine: an existing cgroup
// of that name is an error, never reused.
func New(name, mountAt string) (*Cgroup, error) {
	root, err := cgroupfs.Root()
	if err != nil {
		return nil, fmt.Errorf("test cgroup: %w", err)
	}
	c := &Cgroup{Dir: filepath.Join(root, Prefix+name)}
	c.Path = c.Dir
	if err := os.Mkdir(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("test cgroup: %w", err)
	}
	if mountAt == "" {
		return c, nil
	}

	if err := os.MkdirAll(mountAt, 0o700); err != nil {
		return nil, errors.Join(fmt.Errorf("test cgroup: %w", err), c.Remove())
	}
	if err := unix.Mount(c.Dir, mountAt, "", unix.MS_BIND, ""); err != nil {
		return nil, errors.Join(fmt.Errorf("test cgroup: bind %s at %s: %w", c.Dir, mountAt, err), c.Remove())
	}
	c.Path, c.bound = mountAt, true
	return c, nil
}

// Open opens the cgroup's directory, for SysProcAttr.CgroupFD: a process
// started with it (UseCgroupFD) runs in the cgroup from its first
// instruction.
func (c *Cgroup) Open() (*os.File, error) {
	return os.Open(c.Dir)
}

// removeWait bounds how long Remove waits for the cgroup's processes to
// exit.
const removeWait = 5 * time.Second

// Remove unmounts Path and removes the cgroup, waiting up to 5 s for
// processes still in it to exit. It is idempotent.
func (c *Cgroup) Remove() error {
	var errs []error
	if c.bound {
		if err := unix.Unmount(c.Path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount test cgroup at %s: %w", c.Path, err))
		}
		c.bound = false
	}
	return errors.Join(append(errs, removeDir(c.Dir))...)
}

// removeDir removes a cgroup directory, retrying while it is busy.
func removeDir(dir string) error {
	deadline := time.Now().Add(removeWait)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove test cgroup %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RemoveStale removes the cgroup Prefix+name and its bind mount at
// mountAt, left by a test process that died before Remove. Missing ones
// count as removed.
func RemoveStale(name, mountAt string) error {
	root, err := cgroupfs.Root()
	if err != nil {
		return nil // no hierarchy, so no cgroup of ours either
	}
	c := &Cgroup{Dir: filepath.Join(root, Prefix+name), Path: mountAt, bound: mountAt != ""}
	return c.Remove()
}

// CheckConfig refuses the config file at path unless its paths.cgroup
// is c.Path or a directory below it. Tests and tools call it before they
// start `edgeward run` with a file, so that a forgotten key (whose
// default is the whole machine) fails instead of guarding the host.
func (c *Cgroup) CheckConfig(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	return c.CheckPath(path, cfg.Paths.Cgroup)
}

// CheckPath is CheckConfig for a paths.cgroup value read from file.
func (c *Cgroup) CheckPath(file, cgroup string) error {
	if cgroup == "" {
		return fmt.Errorf("%s: paths.cgroup is not set: the default is the root of the cgroup hierarchy, the whole machine; set it to %s", file, c.Path)
	}
	rel, err := filepath.Rel(c.Path, cgroup)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s: paths.cgroup %s is not the test's own cgroup %s or below it", file, cgroup, c.Path)
	}
	return nil
}
