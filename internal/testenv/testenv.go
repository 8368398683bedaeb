// Package testenv holds what Edgeward's kernel tests need from the machine:
// privileges and a private bpffs.
package testenv

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot stops a test that needs CAP_BPF and CAP_NET_ADMIN when it runs
// unprivileged. Outside CI it skips; in CI (CI set) and under make test
// (EDGEWARD_STRICT set) it fails, because a skip there would hide a broken
// data plane.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" || os.Getenv("EDGEWARD_STRICT") != "" {
		tb.Fatal("this test needs root (CAP_BPF, CAP_NET_ADMIN); CI must run as root")
	}
	tb.Skip("needs root (CAP_BPF, CAP_NET_ADMIN): run make test as root")
}

// BPFFS mounts a bpffs on a temporary directory and unmounts it when the
// test ends, dropping every pin made under it.
func BPFFS(tb testing.TB) string {
	tb.Helper()
	RequireRoot(tb)

	dir := tb.TempDir()
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		tb.Fatalf("mount bpffs on %s: %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			tb.Errorf("unmount bpffs %s: %v", dir, err)
		}
	})
	return dir
}
