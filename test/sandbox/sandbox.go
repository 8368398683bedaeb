package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/edgeward/edgeward/internal/testcgroup"
)

// Host names one of the sandbox's network namespaces.
type Host string

// The hosts of the sandbox; see the package documentation for the wiring.
const (
	OT      Host = "ot"
	Gateway Host = "gw"
	WAN     Host = "wan"
	VPC     Host = "vpc"
)

// ErrClosed is returned by methods that need a live sandbox after Close.
var ErrClosed = errors.New("sandbox closed")

// ErrMissingProgram is wrapped by Start's error when a required program
// is not installed.
var ErrMissingProgram = errors.New("missing program")

// Options tunes Start. The zero value builds the full sandbox.
type Options struct {
	// WithoutWireGuard skips the tunnel: no wireguard-go, no routes into
	// it; VPC endpoints are then unreachable.
	WithoutWireGuard bool
	// WithoutProxy skips tinyproxy.
	WithoutProxy bool
	// Logf receives progress lines from Start and Close; nil discards
	// them. It must stay callable until Close returns.
	Logf func(format string, args ...any)
}

// Sandbox is a set of network namespaces wired as in the package
// documentation, with its servers and daemons. Close it to remove
// everything; until then its namespaces, processes and bpffs mount exist
// on the machine.
type Sandbox struct {
	// Dir is the sandbox's private temporary folder for configuration
	// files and logs; Close removes it.
	Dir string
	// BPFFS is a bpffs mounted at Dir/bpffs, visible inside
	// `ip netns exec`; Close unmounts it, which drops every pin.
	BPFFS string
	// Cgroup is the sandbox's own cgroup v2 directory for the socket
	// guard (paths.cgroup), bind-mounted at Dir/cgroup so that it is
	// visible inside `ip netns exec`; Close removes it. Processes started
	// in it with CgroupFile are guarded; the daemons are not in it.
	Cgroup string
	// ID is the random 4-hex-digit id in every namespace name and in
	// the WireGuard interface names.
	ID string
	// StartupTime is how long Start took.
	StartupTime time.Duration

	opts      Options
	ns        map[Host]netns.NsHandle
	nl        map[Host]*netlink.Handle
	created   []string
	wgGateway string
	wgVPC     string
	ca        *authority
	srv       *servers
	queries   queryLog // what the sandbox's resolvers received
	procs     []*Process
	mounted   bool
	cgroup    *testcgroup.Cgroup

	mu        sync.Mutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// Start builds a sandbox: namespaces, links, addresses, routes, the
// bpffs, the CA and servers, tinyproxy and the WireGuard tunnel, and
// returns once the tunnel carries traffic. ctx bounds the start only; the
// sandbox lives until Close. It needs root and the programs ip, curl,
// wireguard-go, wg and tinyproxy (the last three unless opted out). On
// failure it removes what it built and returns why.
func Start(ctx context.Context, opts Options) (*Sandbox, error) {
	began := time.Now()
	if err := checkPrerequisites(opts); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}

	s := &Sandbox{
		opts: opts,
		ns:   make(map[Host]netns.NsHandle),
		nl:   make(map[Host]*netlink.Handle),
		srv:  &servers{conns: make(map[net.Conn]struct{})},
	}
	if s.opts.Logf == nil {
		s.opts.Logf = func(string, ...any) {}
	}

	if err := s.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("start sandbox: %w", err), s.Close())
	}

	s.StartupTime = time.Since(began)
	s.opts.Logf("sandbox %s ready in %s (dir %s)", s.ID, s.StartupTime.Round(time.Millisecond), s.Dir)
	return s, nil
}

// New starts a sandbox for a test and closes it in t.Cleanup, after the
// cleanups registered later (such as the enforcer's) have run. It fails
// the test when Start fails, and logs the daemons' logs when the test
// failed. Logf defaults to t.Logf.
func New(t testing.TB, opts Options) *Sandbox {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}

	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		if t.Failed() {
			s.logTails(t)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close sandbox %s: %v", s.ID, err)
		}
	})
	return s
}

// logTails writes the end of every daemon log to the test log.
func (s *Sandbox) logTails(t testing.TB) {
	for _, p := range s.procs {
		t.Logf("sandbox %s: last lines of %s:\n%s", s.ID, p.Log, p.Tail(20))
	}
}

// build runs the start steps in order, stops before the next step when
// ctx ends, and logs how long each step took.
func (s *Sandbox) build(ctx context.Context) error {
	steps := []struct {
		name string
		run  func(context.Context) error
		skip bool
	}{
		{"namespaces", s.createNamespaces, false},
		{"folders", s.makeFolders, false},
		{"cgroup", s.makeCgroup, false},
		{"topology", s.buildTopology, false},
		{"servers", s.startAllServers, false},
		{"resolver", func(context.Context) error { return s.startResolver() }, false},
		{"proxy", s.startProxy, s.opts.WithoutProxy},
		{"wireguard", s.startWireGuard, s.opts.WithoutWireGuard},
	}

	for _, step := range steps {
		if step.skip {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("before %s: %w", step.name, err)
		}

		began := time.Now()
		if err := step.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		s.opts.Logf("sandbox %s: %s in %s", s.ID, step.name, time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// prerequisite is a program Start needs and the package that has it.
type prerequisite struct {
	program string
	pkg     string
	skip    bool
}

// checkPrerequisites fails unless the process is root and every needed
// program is installed; the error names each missing Debian package.
func checkPrerequisites(opts Options) error {
	if os.Geteuid() != 0 {
		return errors.New("sandbox needs root (network namespaces, bpffs mount)")
	}

	needs := []prerequisite{
		{"ip", "iproute2", false},
		{"curl", "curl", false},
		{"wireguard-go", "wireguard-go", opts.WithoutWireGuard},
		{"wg", "wireguard-tools", opts.WithoutWireGuard},
		{"tinyproxy", "tinyproxy", opts.WithoutProxy},
	}

	var errs []error
	for _, n := range needs {
		if n.skip {
			continue
		}
		if _, err := exec.LookPath(n.program); err != nil {
			errs = append(errs, fmt.Errorf("%w %s: install the Debian package %s",
				ErrMissingProgram, n.program, n.pkg))
		}
	}
	return errors.Join(errs...)
}

// createNamespaces claims an id, creates the four namespaces and opens a
// namespace handle and a netlink handle on each.
func (s *Sandbox) createNamespaces(ctx context.Context) error {
	id, err := claimID()
	if err != nil {
		return err
	}
	s.ID = id
	s.created = append(s.created, nsName(id, hosts[0]))
	s.wgGateway, s.wgVPC = wgGatewayName(id), wgVPCName(id)

	for _, h := range hosts[1:] {
		if err := addNamespace(nsName(id, h)); err != nil {
			return err
		}
		s.created = append(s.created, nsName(id, h))
	}

	for _, h := range hosts {
		if err := s.openHandles(h); err != nil {
			return err
		}
	}
	return nil
}

// openHandles opens the namespace and netlink handles of host h.
func (s *Sandbox) openHandles(h Host) error {
	ns, err := openNamespace(s.NetNS(h))
	if err != nil {
		return err
	}
	s.ns[h] = ns

	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", h, err)
	}
	s.nl[h] = nl
	return nil
}

// makeFolders creates Dir with the owner file, mounts the bpffs and
// makes the CA.
func (s *Sandbox) makeFolders(ctx context.Context) error {
	dir, err := os.MkdirTemp("", dirPrefix+s.ID+"-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	s.Dir = dir
	if err := writeOwner(dir); err != nil {
		return err
	}

	s.BPFFS = filepath.Join(dir, "bpffs")
	if err := mountBPFFS(s.BPFFS); err != nil {
		return err
	}
	s.mounted = true

	s.ca, err = newAuthority(dir, s.ID)
	return err
}

// cgroupName is the name of a sandbox's cgroup, below testcgroup.Prefix.
func cgroupName(id string) string {
	return "sandbox-" + id
}

// makeCgroup creates the sandbox's cgroup for the socket guard.
func (s *Sandbox) makeCgroup(ctx context.Context) error {
	cg, err := testcgroup.New(cgroupName(s.ID), filepath.Join(s.Dir, "cgroup"))
	if err != nil {
		return err
	}
	s.cgroup, s.Cgroup = cg, cg.Path
	return nil
}

// CgroupFile opens the sandbox's cgroup, for SysProcAttr.CgroupFD: a
// process started with it (UseCgroupFD) runs in the guarded cgroup.
// Close the file once the process started.
func (s *Sandbox) CgroupFile() (*os.File, error) {
	if s.cgroup == nil {
		return nil, ErrClosed
	}
	return s.cgroup.Open()
}

// startAllServers starts the in-process servers.
func (s *Sandbox) startAllServers(ctx context.Context) error {
	return s.startServers()
}

// NetNS returns the name of host h's namespace, for `ip netns exec` and
// `ip -n`.
func (s *Sandbox) NetNS(h Host) string {
	return nsName(s.ID, h)
}

// Do runs fn on a goroutine locked to an OS thread that is switched into
// host h's namespace, and switches the thread back after. Sockets fn
// creates stay in that namespace; goroutines fn starts do not inherit it.
// fn must not call t.FailNow (it runs on another goroutine). It fails on
// an unknown host or a closed sandbox.
func (s *Sandbox) Do(h Host, fn func() error) error {
	s.mu.Lock()
	closed := s.closed
	ns, ok := s.ns[h]
	s.mu.Unlock()

	if closed {
		return ErrClosed
	}
	if !ok {
		return fmt.Errorf("unknown sandbox host %q", h)
	}
	return runIn(ns, fn)
}

// Close stops the servers and processes, removes the WireGuard sockets,
// deletes the namespaces, unmounts the bpffs and removes Dir. Stop
// anything that uses the bpffs or the namespaces first. Close is
// idempotent; it returns the errors of all steps joined, and later calls
// return the same.
func (s *Sandbox) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.teardown() })
	return s.closeErr
}

// teardown is Close's body; each step runs even when an earlier one
// failed.
func (s *Sandbox) teardown() error {
	began := time.Now()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()

	errs := []error{
		s.srv.shutdown(),
		s.stopProcesses(),
		s.removeWGSockets(),
	}
	s.closeHandles()
	for _, name := range s.created {
		errs = append(errs, deleteNamespace(name))
	}
	if s.cgroup != nil {
		errs = append(errs, s.cgroup.Remove())
	}

	errs = append(errs, s.removeFolders())
	s.opts.Logf("sandbox %s closed in %s", s.ID, time.Since(began).Round(time.Millisecond))
	return errors.Join(errs...)
}

// closeHandles closes the netlink and namespace handles.
func (s *Sandbox) closeHandles() {
	s.mu.Lock()
	defer s.mu.Unlock()

	for h, nl := range s.nl {
		nl.Close()
		delete(s.nl, h)
	}
	for h, ns := range s.ns {
		ns.Close()
		delete(s.ns, h)
	}
}

// removeFolders unmounts the bpffs and removes Dir.
func (s *Sandbox) removeFolders() error {
	var errs []error
	if s.mounted {
		errs = append(errs, unmountBPFFS(s.BPFFS))
	}
	if s.Dir != "" {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", s.Dir, err))
		}
	}
	return errors.Join(errs...)
}
