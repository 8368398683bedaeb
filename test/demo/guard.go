package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	sb "github.com/edgeward/edgeward/test/sandbox"
)

// bypassEnv makes the demo binary, started again in the gateway's guarded
// cgroup, try PACKET_QDISC_BYPASS (tryBypass) instead of running the demo.
const bypassEnv = "EDGEWARD_DEMO_BYPASS"

// tryBypass sets PACKET_QDISC_BYPASS on an AF_PACKET socket, as a process
// with CAP_NET_RAW would to send frames that skip tc egress. It exits 0
// when the option was accepted, 1 with the error otherwise.
func tryBypass() int {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
		unix.Close(fd)
	}
	if errors.Is(err, unix.EPERM) {
		fmt.Println("setsockopt: EPERM")
		return 1
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
}

// guardRows show the socket guard: a process of the gateway in the
// guarded cgroup cannot set PACKET_QDISC_BYPASS, whose frames would skip
// the egress policy. "pass" would mean the option was accepted.
func guardRows() []row {
	return []row{
		{sb.Gateway, "any (AF_PACKET frames)", "-", "PACKET_QDISC_BYPASS", false, bypassRow},
	}
}

// bypassRow runs tryBypass in the gateway, in the sandbox's cgroup.
func bypassRow(ctx context.Context, d *demo) error {
	cg, err := d.sb.CgroupFile()
	if err != nil {
		return err
	}
	defer cg.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := d.sb.Command(ctx, sb.Gateway, self)
	cmd.Env = append(cmd.Env, bypassEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s", strings.TrimSpace(string(out)))
	}
	return nil
}
