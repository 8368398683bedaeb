package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	sb "github.com/edgeward/edgeward/test/sandbox"
)

// bypassEnv makes the demo binary, started again in the gateway's guarded
// cgroup, try PACKET_QDISC_BYPASS (tryBypass) instead of running the demo.
const bypassEnv = "EDGEWARD_DEMO_BYPASS"

// Exit statuses of tryBypass.
const (
	bypassAccepted = 0
	bypassRefused  = 1 // setsockopt said EPERM: the guard
	bypassBroken   = 2 // anything else: the probe says nothing
)

// tryBypass sets PACKET_QDISC_BYPASS on an AF_PACKET socket, as a process
// with CAP_NET_RAW would to send frames that skip tc egress, and exits
// with what happened (bypassAccepted, ...), printing any error.
func tryBypass() int {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		fmt.Println("socket:", err)
		return bypassBroken
	}
	defer unix.Close(fd)
	err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	switch {
	case err == nil:
		return bypassAccepted
	case errors.Is(err, unix.EPERM):
		fmt.Println("setsockopt: EPERM")
		return bypassRefused
	}
	fmt.Println("setsockopt:", err)
	return bypassBroken
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
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == bypassRefused:
		return fmt.Errorf("refused: %s", strings.TrimSpace(string(out)))
	}
	return fmt.Errorf("%w: %v: %s", errProbeBroken, err, strings.TrimSpace(string(out)))
}
