package config

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/edgeward/edgeward/internal/cgroupfs"
)

// ErrNoCgroup2 is wrapped by GuardCgroup's error when the file leaves
// paths.cgroup out and no cgroup v2 hierarchy is mounted: there is
// nothing for the socket guard to attach to.
var ErrNoCgroup2 = errors.New("no cgroup v2 hierarchy is mounted, so the socket guard has nothing to attach to")

// GuardCgroup returns the cgroup v2 directory the socket guard covers:
// paths.cgroup, or the root of the cgroup v2 hierarchy that
// /proc/self/mountinfo names when the file leaves the key out. Unlike
// Parse it reads the file system.
//
// A paths.cgroup that does not exist or is no cgroup v2 directory gives
// an ErrorList whose entry names the file, line, column and field.
// Without the key and without a cgroup v2 hierarchy the error wraps
// ErrNoCgroup2; the daemon then runs without the guard.
func (c *Config) GuardCgroup() (string, error) {
	if c.Paths.Cgroup == "" {
		root, err := cgroupfs.Root()
		if errors.Is(err, cgroupfs.ErrNotMounted) {
			return "", fmt.Errorf("%s: paths.cgroup: %w", c.File, ErrNoCgroup2)
		}
		if err != nil {
			return "", fmt.Errorf("%s: paths.cgroup (default, the cgroup v2 root): %w", c.File, err)
		}
		return root, nil
	}

	err := cgroupfs.Check(c.Paths.Cgroup)
	if err == nil {
		return c.Paths.Cgroup, nil
	}
	msg := fmt.Sprintf("%q: %v", c.Paths.Cgroup, err)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg = fmt.Sprintf("%q does not exist: create the cgroup first, or leave the key out to guard every process", c.Paths.Cgroup)
	case errors.Is(err, cgroupfs.ErrNotCgroup2):
		msg = err.Error() + rootHint()
	}
	return "", ErrorList{{
		File: c.File, Line: c.Paths.CgroupAt.Line, Column: c.Paths.CgroupAt.Column,
		Field: "paths.cgroup", Msg: msg,
	}}
}

// rootHint says where the cgroup v2 hierarchy is mounted, if anywhere.
func rootHint() string {
	root, err := cgroupfs.Root()
	if err != nil {
		return "; no cgroup v2 hierarchy is mounted here"
	}
	return "; the cgroup v2 hierarchy is mounted at " + root
}
