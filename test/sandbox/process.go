package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgeward/edgeward/config"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 3 * time.Second

// Process is a long-running program that the sandbox started in one of
// its namespaces, with standard output and error in a log file under
// Sandbox.Dir. Close stops it (in reverse start order, before the
// namespaces and the bpffs go). It gets SIGKILL if the test binary dies
// first.
type Process struct {
	// Name is the program's short name, also the log file's base name.
	Name string
	// Log is the path of the log file.
	Log string

	cmd       *exec.Cmd
	done      chan struct{}
	waitErr   error
	signalled atomic.Bool
	stop      sync.Once
	stopErr   error
}

// PID returns the process id.
func (p *Process) PID() int {
	return p.cmd.Process.Pid
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process, for example SIGKILL to simulate a
// crash. Stop and Close do not report an exit that follows a signal sent
// here.
func (p *Process) Signal(sig os.Signal) error {
	p.signalled.Store(true)
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s (pid %d): %w", p.Name, p.PID(), err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns how it
// ended: nil for exit status 0, an *exec.ExitError otherwise. It fails
// with os.ErrDeadlineExceeded when the process still runs.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(timeout):
		return fmt.Errorf("wait for %s (pid %d): %w", p.Name, p.PID(), os.ErrDeadlineExceeded)
	}
}

// Stop sends SIGTERM, waits up to 3 s, then sends SIGKILL and waits for
// the exit. It is idempotent. An exit caused by its own signal is not an
// error; an earlier crash is reported with the tail of the log.
func (p *Process) Stop() error {
	p.stop.Do(func() { p.stopErr = p.terminate() })
	return p.stopErr
}

// terminate is Stop's body.
func (p *Process) terminate() error {
	if p.Exited() {
		return p.crashed()
	}

	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}

	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.Name, p.PID())
	}
}

// crashed describes an exit that nobody asked for.
func (p *Process) crashed() error {
	if p.waitErr == nil || p.signalled.Load() {
		return nil
	}
	return fmt.Errorf("%s exited early: %w\n%s", p.Name, p.waitErr, p.Tail(10))
}

// Tail returns the last n lines of the process log, or a note why it
// cannot.
func (p *Process) Tail(n int) string {
	data, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}

	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// StartProcess starts a program in host h's namespace through
// `ip netns exec` (so the PID is the program's own) with its output in
// Dir/<logName>.log, and stops it on Close. The program runs with the
// proxy variables removed from its environment. It fails when the
// sandbox is closed or the program cannot be started, and refuses an
// `edgeward run` whose config does not guard the sandbox's own cgroup
// (see checkGuardTarget).
func (s *Sandbox) StartProcess(h Host, logName, name string, args ...string) (*Process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if err := s.checkGuardTarget(args); err != nil {
		return nil, fmt.Errorf("start %s: %w", logName, err)
	}

	p, err := s.spawn(h, logName, name, args...)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return p, nil
}

// spawn is StartProcess without the bookkeeping.
func (s *Sandbox) spawn(h Host, logName, name string, args ...string) (*Process, error) {
	logPath := filepath.Join(s.Dir, logName+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer log.Close()

	argv := append([]string{"netns", "exec", s.NetNS(h), name}, args...)
	cmd := exec.Command("ip", argv...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, h, err)
	}

	p := &Process{Name: logName, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stopProcesses stops every process in reverse start order.
func (s *Sandbox) stopProcesses() error {
	var errs []error
	for i := len(s.procs) - 1; i >= 0; i-- {
		errs = append(errs, s.procs[i].Stop())
	}
	return errors.Join(errs...)
}

// checkGuardTarget refuses the arguments of an `edgeward run` (a "run"
// followed by -c FILE, also behind a wrapper such as setpriv) unless
// FILE's paths.cgroup is the sandbox's cgroup or one below it. Left out,
// paths.cgroup is the root of the cgroup hierarchy: the daemon would
// guard every process of the machine. Other commands pass.
func (s *Sandbox) checkGuardTarget(args []string) error {
	for i, a := range args {
		if a != "run" {
			continue
		}
		file, ok := configFlag(args[i+1:])
		if !ok {
			return fmt.Errorf("edgeward run without -c FILE would use the machine's config and guard its root cgroup; pass a config whose paths.cgroup is %s", s.Cgroup)
		}
		if s.cgroup == nil {
			return ErrClosed
		}
		cfg, err := config.Load(file)
		if err != nil {
			return nil // the daemon refuses it too, before it touches the kernel
		}
		return s.cgroup.CheckPath(file, cfg.Paths.Cgroup)
	}
	return nil
}

// configFlag finds the value of -c among args.
func configFlag(args []string) (string, bool) {
	for i, a := range args {
		switch {
		case (a == "-c" || a == "--c") && i+1 < len(args):
			return args[i+1], true
		case strings.HasPrefix(a, "-c="):
			return strings.TrimPrefix(a, "-c="), true
		case strings.HasPrefix(a, "--c="):
			return strings.TrimPrefix(a, "--c="), true
		}
	}
	return "", false
}
