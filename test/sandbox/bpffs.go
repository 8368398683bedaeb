package sandbox

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mountBPFFS mounts a bpffs at dir in the test's mount namespace. It is
// outside /sys, so programs started with `ip netns exec` (which mounts a
// fresh /sys) still see it and their pins outlive them.
func mountBPFFS(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bpffs dir: %w", err)
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", dir, err)
	}
	return nil
}

// unmountBPFFS unmounts the bpffs, which drops every pin in it, and
// detaches it lazily when something still uses it. A path that is gone
// or no mount point counts as done.
func unmountBPFFS(dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount bpffs at %s: %w", dir, err)
	}
	return nil
}
