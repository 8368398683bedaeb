package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/internal/testcgroup"
)

// benchNS is a network namespace the benchmark made and removes.
type benchNS struct {
	name string
}

func newNS(name string) (*benchNS, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &benchNS{name: name}
	if err := ns.sh("ip link set lo up"); err != nil {
		ns.remove()
		return nil, err
	}
	return ns, nil
}

// sh runs a command line inside the namespace.
func (n *benchNS) sh(cmd string) error {
	args := append([]string{"netns", "exec", n.name}, strings.Fields(cmd)...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s in %s: %v: %s", cmd, n.name, err, out)
	}
	return nil
}

// output runs a command line inside the namespace and returns its output.
func (n *benchNS) output(cmd string) (string, error) {
	args := append([]string{"netns", "exec", n.name}, strings.Fields(cmd)...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s in %s: %v: %s", cmd, n.name, err, out)
	}
	return string(out), nil
}

func (n *benchNS) remove() {
	exec.Command("ip", "netns", "del", n.name).Run()
}

// do runs fn on a thread switched into the namespace.
func (n *benchNS) do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(n.name)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer netns.Set(orig)
	return fn()
}

// readFile reads a file as seen from inside the namespace (for /sys).
func (n *benchNS) readFile(path string) (string, error) {
	var data []byte
	err := n.do(func() error {
		var err error
		data, err = os.ReadFile(path)
		return err
	})
	return strings.TrimSpace(string(data)), err
}

// benchCgroup makes a cgroup for the socket guard of a benchmark's
// daemon, bind-mounted at dir/cgroup so that `ip netns exec` sees it;
// Remove it when done. startDaemon checks that the config names it.
func benchCgroup(dir string) (*testcgroup.Cgroup, error) {
	return testcgroup.New(fmt.Sprintf("bench-%d-%s", os.Getpid(), filepath.Base(dir)), filepath.Join(dir, "cgroup"))
}

// mountBPFFS mounts a bpffs on dir (created) and returns how to undo it.
func mountBPFFS(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		return nil, fmt.Errorf("mount bpffs on %s: %w", dir, err)
	}
	return func() { unix.Unmount(dir, unix.MNT_DETACH) }, nil
}
