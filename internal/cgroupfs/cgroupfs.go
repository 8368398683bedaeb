// Package cgroupfs finds and checks cgroup v2 directories: the root of
// the hierarchy that /proc/self/mountinfo names, and whether a directory
// is a cgroup of that hierarchy. It reads the file system and never
// writes to it.
package cgroupfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotMounted is returned by Root when no cgroup v2 hierarchy is
// mounted at its root in this mount namespace. `ip netns exec` is one
// way to get there: it mounts a fresh /sys, without the cgroup file
// systems below it.
var ErrNotMounted = errors.New("no cgroup v2 hierarchy is mounted")

// ErrNotCgroup2 is wrapped by Check's error for a directory on another
// file system.
var ErrNotCgroup2 = errors.New("not a cgroup v2 directory")

// mountinfoPath lists the mounts of this process's mount namespace.
const mountinfoPath = "/proc/self/mountinfo"

// Root returns where the root of the cgroup v2 hierarchy is mounted:
// /sys/fs/cgroup on a unified system, /sys/fs/cgroup/unified on a hybrid
// one. With several such mounts it returns the first one listed.
func Root() (string, error) {
	data, err := os.ReadFile(mountinfoPath)
	if err != nil {
		return "", fmt.Errorf("find the cgroup v2 hierarchy: %w", err)
	}
	return rootIn(data)
}

// rootIn finds the first cgroup2 mount of the hierarchy's root in the
// text of a mountinfo file. A mount of a subtree (root other than "/"),
// as a bind mount or a container shows, does not count.
func rootIn(mountinfo []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		if fields[sep+1] == "cgroup2" && fields[3] == "/" {
			return unescape(fields[4]), nil
		}
	}
	return "", ErrNotMounted
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Check tells whether dir is a directory of a cgroup v2 hierarchy. The
// error wraps fs.ErrNotExist for a missing path and ErrNotCgroup2 for a
// directory on another file system (a cgroup v1 hierarchy, the tmpfs
// that holds them on a hybrid system).
func Check(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%w: %s is a file", ErrNotCgroup2, dir)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("%w: %s is on a %s file system", ErrNotCgroup2, dir, fsName(fs.Type))
	}
	return nil
}

// fsName names the file systems one meets around /sys/fs/cgroup.
func fsName(magic int64) string {
	switch magic {
	case unix.CGROUP_SUPER_MAGIC:
		return "cgroup v1"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.SYSFS_MAGIC:
		return "sysfs"
	}
	return fmt.Sprintf("0x%x", magic)
}

// ID returns the id of the cgroup v2 directory dir, as the kernel
// reports it for the cgroup of a BPF link: the inode number of the
// directory.
func ID(dir string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("cgroup id of %s: %w", dir, err)
	}
	return st.Ino, nil
}
