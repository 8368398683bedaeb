package loader

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/config"
)

// TestApplyPolicyWithoutSysAdmin applies policies the way a daemon does
// that runs with the capabilities of packaging/edgeward.service, which
// leaves out CAP_SYS_ADMIN. Every slot gets used twice, so the wait for
// readers of a slot that held a policy runs as well.
func TestApplyPolicyWithoutSysAdmin(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))

	errs := make(chan error, 1)
	go func() {
		// The thread keeps the reduced set: it ends with the goroutine
		// because it stays locked.
		runtime.LockOSThread()
		if err := dropEffectiveCap(unix.CAP_SYS_ADMIN); err != nil {
			errs <- err
			return
		}
		errs <- applyGenerations(l, 2, 5)
	}()
	if err := <-errs; err != nil {
		t.Fatalf("without CAP_SYS_ADMIN: %v", err)
	}

	active, _, err := l.Maps().ActivePolicy()
	if err != nil {
		t.Fatal(err)
	}
	if active.Generation != 5 {
		t.Errorf("active generation %d, want 5", active.Generation)
	}
}

// applyGenerations compiles testPolicy and applies it as generations
// first to last.
func applyGenerations(l *Loader, first, last uint32) error {
	for gen := first; gen <= last; gen++ {
		p, err := Compile(testPolicy(config.ModeEnforce), gen)
		if err != nil {
			return err
		}
		if err := l.ApplyPolicy(p); err != nil {
			return err
		}
	}
	return nil
}

// dropEffectiveCap removes capability c from the effective set of the
// calling thread only; the caller must have locked its OS thread.
func dropEffectiveCap(c int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[c/32].Effective &^= 1 << (c % 32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return err
	}
	return nil
}
