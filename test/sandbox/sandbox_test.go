package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/internal/cgroupfs"
	"github.com/edgeward/edgeward/internal/testcgroup"
)

// timeout bounds each probe in these tests.
const timeout = 5 * time.Second

// requireRoot skips a test that needs namespaces when not run as root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: run as root to build network namespaces")
	}
}

// wantHTTPS fetches url from h and checks the status and the server
// name at the start of the body.
func wantHTTPS(s *Sandbox, h Host, url, proxy, server string) error {
	status, body, err := s.HTTPSGetBody(h, url, proxy, timeout)
	if err != nil {
		return err
	}
	if status != 200 || !strings.HasPrefix(body, server+" ") {
		return fmt.Errorf("got %d %q, want 200 from %s", status, body, server)
	}
	return nil
}

// wantCurl runs curl from h and checks the server name in the body.
func wantCurl(s *Sandbox, h Host, server string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	body, err := s.Curl(ctx, h, args...)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(body, server+" ") {
		return fmt.Errorf("body %q, want one from %s", body, server)
	}
	return nil
}

func TestSandboxConnectivity(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	s := New(t, Options{})
	t.Logf("start took %s", s.StartupTime)

	tests := []struct {
		name  string
		check func() error
	}{
		{"ot https internet v4", func() error {
			return wantHTTPS(s, OT, URL(InternetHost4), "", InternetHostName)
		}},
		{"ot https internet v6", func() error {
			return wantHTTPS(s, OT, URL(InternetHost6), "", InternetHostName)
		}},
		{"ot https approved endpoint v4", func() error {
			return wantHTTPS(s, OT, URL(EndpointHost4), "", EndpointHostName)
		}},
		{"ot https approved endpoint v6", func() error {
			return wantHTTPS(s, OT, URL(EndpointHost6), "", EndpointHostName)
		}},
		{"ot https vpc endpoint v4 through tunnel", func() error {
			return wantHTTPS(s, OT, URL(VPCEndpoint4), "", VPCEndpointName)
		}},
		{"ot https vpc endpoint v6 through tunnel", func() error {
			return wantHTTPS(s, OT, URL(VPCEndpoint6), "", VPCEndpointName)
		}},
		{"gw https internet via proxy v4", func() error {
			return wantHTTPS(s, Gateway, URL(InternetHost4), ProxyURL4, InternetHostName)
		}},
		{"gw https internet v6 via proxy v6", func() error {
			return wantHTTPS(s, Gateway, URL(InternetHost6), ProxyURL6, InternetHostName)
		}},
		{"ot https internet via proxy v4", func() error {
			return wantHTTPS(s, OT, URL(InternetHost4), ProxyURL4, InternetHostName)
		}},
		{"gw curl -x proxy v4", func() error {
			return wantCurl(s, Gateway, InternetHostName, "-x", ProxyURL4, URL(InternetHost4))
		}},
		{"gw curl -x proxy v6", func() error {
			return wantCurl(s, Gateway, InternetHostName, "-x", ProxyURL6, URL(InternetHost6))
		}},
		{"ot curl vpc endpoint", func() error {
			return wantCurl(s, OT, VPCEndpointName, URL(VPCEndpoint4))
		}},
		{"ot udp echo internet v4", func() error {
			return s.EchoUDP(OT, Addr(InternetHost4, UDPEchoPort), timeout)
		}},
		{"ot udp echo internet v6", func() error {
			return s.EchoUDP(OT, Addr(InternetHost6, UDPEchoPort), timeout)
		}},
		{"ot udp echo approved endpoint", func() error {
			return s.EchoUDP(OT, Addr(EndpointHost4, UDPEchoPort), timeout)
		}},
		{"ot udp echo vpc endpoint v4", func() error {
			return s.EchoUDP(OT, Addr(VPCEndpoint4, UDPEchoPort), timeout)
		}},
		{"ot udp echo vpc endpoint v6", func() error {
			return s.EchoUDP(OT, Addr(VPCEndpoint6, UDPEchoPort), timeout)
		}},
		{"ot tcp echo 8443 v4", func() error {
			return s.EchoTCP(OT, Addr(EndpointHost4, UnlistedPort), timeout)
		}},
		{"ot tcp echo 8443 v6", func() error {
			return s.EchoTCP(OT, Addr(EndpointHost6, UnlistedPort), timeout)
		}},
		{"gw tcp echo 8443", func() error {
			return s.EchoTCP(Gateway, Addr(EndpointHost4, UnlistedPort), timeout)
		}},
		{"ot tcp echo vpc 8883", func() error {
			return s.EchoTCP(OT, Addr(VPCEndpoint4, MQTTSPort), timeout)
		}},
		{"ot dial tcp internet", func() error {
			return s.DialTCP(OT, Addr(InternetHost4, HTTPSPort), timeout)
		}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSandboxProxyRefusesUnlistedPort(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	s := New(t, Options{WithoutWireGuard: true})

	target := "https://" + Addr(EndpointHost4, UnlistedPort) + "/"
	if _, err := s.HTTPSGet(Gateway, target, ProxyURL4, timeout); err == nil {
		t.Errorf("CONNECT to port %d through the proxy succeeded, want refused", UnlistedPort)
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := s.Curl(ctx, Gateway, "-x", ProxyURL4, target)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 56 {
		t.Errorf("curl through the proxy to port %d: %v, want exit code 56", UnlistedPort, err)
	}
}

func TestSandboxTunnelDown(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	s := New(t, Options{WithoutProxy: true})
	target := Addr(VPCEndpoint4, UDPEchoPort)

	if err := s.SetTunnelDown(true); err != nil {
		t.Fatal(err)
	}
	if err := s.EchoUDP(OT, target, 300*time.Millisecond); err == nil {
		t.Error("echo through a tunnel that is down succeeded")
	}

	if err := s.SetTunnelDown(false); err != nil {
		t.Fatal(err)
	}
	if err := s.EchoUDP(OT, target, timeout); err != nil {
		t.Errorf("echo after the tunnel came back: %v", err)
	}
}

func TestSandboxTools(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	s := New(t, Options{WithoutWireGuard: true, WithoutProxy: true})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	out, err := s.Command(ctx, Gateway, "stat", "-f", "-c", "%T", s.BPFFS).Output()
	if err != nil {
		t.Fatalf("stat bpffs inside ip netns exec: %v", err)
	}
	if diff := cmp.Diff("bpf_fs", strings.TrimSpace(string(out))); diff != "" {
		t.Errorf("bpffs file system type (-want +got):\n%s", diff)
	}

	gw, vpc := s.WireGuard()
	if gw != "" || vpc != "" || s.SetTunnelDown(true) == nil {
		t.Errorf("sandbox without wireguard reports %q %q or sets its tunnel", gw, vpc)
	}

	if err := s.ListenTCPEcho(OT, Addr(OTAddr6, 7000)); err != nil {
		t.Fatal(err)
	}
	if err := s.EchoTCP(Gateway, Addr(OTAddr6, 7000), timeout); err != nil {
		t.Errorf("echo on a listener added later: %v", err)
	}

	p, err := s.StartProcess(WAN, "sleeper", "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil || !p.Exited() {
		t.Errorf("stop process: %v, exited %v", err, p.Exited())
	}

	crash, err := s.StartProcess(Gateway, "crasher", "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := crash.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := crash.Wait(timeout); err == nil {
		t.Error("killed process reports a clean exit")
	}
	if err := crash.Stop(); err != nil {
		t.Errorf("stop after a deliberate kill: %v", err)
	}
}

// TestSandboxRefusesRunOutsideItsCgroup: an `edgeward run` whose config
// leaves paths.cgroup out (the default is the whole machine) or names
// another cgroup than the sandbox's is refused by StartProcess and
// Command; one that names the sandbox's cgroup starts. "true" stands in
// for edgeward, so nothing would be attached if the check failed open.
func TestSandboxRefusesRunOutsideItsCgroup(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	s := New(t, Options{WithoutWireGuard: true, WithoutProxy: true})
	if err := cgroupfs.Check(s.Cgroup); err != nil {
		t.Fatalf("the sandbox's cgroup: %v", err)
	}
	root, err := cgroupfs.Root()
	if err != nil {
		t.Fatal(err)
	}

	write := func(name, paths string) string {
		path := filepath.Join(s.Dir, name)
		if err := os.WriteFile(path, []byte("mode: enforce\n"+paths), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		file string
		err  string
	}{
		{write("default.yaml", ""), "paths.cgroup is not set"},
		{write("root.yaml", "paths: {cgroup: "+root+"}\n"), "is not the test's own cgroup"},
		{write("own.yaml", "paths: {cgroup: "+s.Cgroup+"}\n"), ""},
	}
	for _, tt := range tests {
		p, err := s.StartProcess(Gateway, filepath.Base(tt.file), "true", "run", "-c", tt.file)
		if tt.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.file, err)
			} else if err := p.Wait(timeout); err != nil {
				t.Errorf("%s: %v", tt.file, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("StartProcess with %s: %v, want %q", tt.file, err, tt.err)
		}
		err = s.Command(t.Context(), Gateway, "true", "run", "--c="+tt.file).Run()
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("Command with %s: %v, want %q", tt.file, err, tt.err)
		}
	}
	if _, err := s.StartProcess(Gateway, "no-config", "true", "run"); err == nil {
		t.Error("a run without -c was started")
	}
}

// leftovers lists what of a closed sandbox is still on the machine.
func leftovers(t *testing.T, id, dir string, pids []int) []string {
	t.Helper()

	names, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}

	var left []string
	if strings.Contains(string(names), "ew"+id+"-") {
		left = append(left, "namespace ew"+id+"-*")
	}
	if strings.Contains(string(mounts), dir) {
		left = append(left, "mount under "+dir)
	}
	for _, pid := range pids {
		if !deadOrZombie(pid) {
			left = append(left, fmt.Sprintf("process %d", pid))
		}
	}

	paths := []string{dir, wgSocket(wgGatewayName(id)), wgSocket(wgVPCName(id))}
	if root, err := cgroupfs.Root(); err == nil {
		paths = append(paths, filepath.Join(root, testcgroup.Prefix+cgroupName(id)))
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			left = append(left, p)
		}
	}
	return left
}

func TestSandboxCleanup(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	s, err := Start(t.Context(), Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	var pids []int
	for _, p := range s.procs {
		pids = append(pids, p.PID())
	}
	if len(pids) != 3 {
		t.Errorf("sandbox runs %d daemons, want 3 (2 wireguard-go, tinyproxy)", len(pids))
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}

	left := leftovers(t, s.ID, s.Dir, pids)
	if diff := cmp.Diff([]string(nil), left); diff != "" {
		t.Errorf("left after Close (-want +got):\n%s", diff)
	}
	if err := s.Do(OT, func() error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
}

func TestSandboxParallel(t *testing.T) {
	requireRoot(t)
	var (
		mu  sync.Mutex
		ids = map[string]string{}
	)

	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"first", "second"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := New(t, Options{WithoutProxy: true})
				mu.Lock()
				ids[name] = s.ID
				mu.Unlock()

				if err := s.EchoTCP(OT, Addr(VPCEndpoint4, MQTTSPort), timeout); err != nil {
					t.Error(err)
				}
				gw, _ := s.WireGuard()
				if _, err := s.nl[Gateway].LinkByName(gw); err != nil {
					t.Errorf("own tunnel interface: %v", err)
				}
			})
		}
	})

	if ids["first"] == ids["second"] {
		t.Errorf("two sandboxes share id %q", ids["first"])
	}
}

// rootState is what the sandbox must never change in the root namespace.
type rootState struct {
	Links   []string
	Sysctls map[string]string
}

// snapshotRoot reads the root namespace's links and forwarding and DAD
// sysctls.
func snapshotRoot(t *testing.T) rootState {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}

	var st rootState
	for _, l := range links {
		st.Links = append(st.Links, l.Attrs().Name)
	}
	st.Sysctls = map[string]string{}
	for key := range mergeKeys(baseSysctls, routerSysctls) {
		path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		st.Sysctls[key] = strings.TrimSpace(string(data))
	}
	return st
}

// mergeKeys returns the keys of both maps.
func mergeKeys(a, b map[string]string) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

// TestSandboxLeavesRootNamespaceAlone runs alone (not parallel), so no
// other sandbox is being built while it compares.
func TestSandboxLeavesRootNamespaceAlone(t *testing.T) {
	requireRoot(t)
	before := snapshotRoot(t)

	s := New(t, Options{})
	during := snapshotRoot(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after := snapshotRoot(t)

	if diff := cmp.Diff(before, during); diff != "" {
		t.Errorf("root namespace changed while the sandbox ran (-before +during):\n%s", diff)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("root namespace changed after Close (-before +after):\n%s", diff)
	}
}

// deadOrZombie reports whether a process is gone or only waits to be
// reaped (its parent died, and init may not reap in a container).
func deadOrZombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(rest, "Z")
}

// abandonSandbox runs the test binary as a helper that starts a sandbox
// and exits without Close; it returns the sandbox's id, folder and
// daemons.
func abandonSandbox(t *testing.T) (id, dir string, pids []int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), abandonEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("abandon a sandbox: %v", err)
	}

	fields := strings.Fields(string(out))
	if len(fields) < 2 {
		t.Fatalf("abandoned sandbox printed %q", out)
	}
	for _, f := range fields[2:] {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("abandoned sandbox printed %q", out)
		}
		pids = append(pids, pid)
	}
	return fields[0], fields[1], pids
}

// reapDead waits until each process has died and, once it has been
// handed to this process as subreaper, reaps it.
func reapDead(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for !reaped(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !deadOrZombie(pid) {
			t.Errorf("daemon %d outlived its test binary", pid)
		}
	}
}

// reaped reaps pid if it is a zombie child of this process and reports
// whether it is gone.
func reaped(pid int) bool {
	if got, _ := unix.Wait4(pid, nil, unix.WNOHANG, nil); got == pid {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err != nil
}

func TestSandboxSweepStale(t *testing.T) {
	requireRoot(t)
	t.Parallel()

	// Adopt the abandoned daemons when their test binary dies, so they
	// can be reaped here instead of staying zombies under init.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("become subreaper: %v", err)
	}
	id, dir, pids := abandonSandbox(t)
	if len(pids) != 3 {
		t.Errorf("abandoned sandbox ran %d daemons, want 3", len(pids))
	}
	reapDead(t, pids)

	swept, err := SweepStale()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(swept, id) {
		t.Errorf("swept %v, want %s among them", swept, id)
	}
	if diff := cmp.Diff([]string(nil), leftovers(t, id, dir, pids)); diff != "" {
		t.Errorf("left after sweep (-want +got):\n%s", diff)
	}
}

// machineState lists the sandbox traces on the machine: namespaces,
// folders, WireGuard sockets, cgroups and bpffs mounts.
func machineState(t *testing.T) []string {
	t.Helper()
	names, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	state := strings.Split(strings.TrimSpace(string(names)), "\n")

	patterns := []string{
		filepath.Join(os.TempDir(), dirPrefix+"*"),
		filepath.Join(wgSocketDir, "*"),
	}
	if root, err := cgroupfs.Root(); err == nil {
		patterns = append(patterns, filepath.Join(root, testcgroup.Prefix+cgroupName("*")))
	}
	for _, pattern := range patterns {
		matches, _ := filepath.Glob(pattern)
		state = append(state, matches...)
	}

	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(mounts)) {
		if strings.Contains(line, dirPrefix) {
			state = append(state, line)
		}
	}
	return state
}

// TestSandboxStartFailureCleansUp cancels Start at several points and
// checks that a failed Start leaves nothing behind. It runs alone (not
// parallel) so that no other sandbox changes the machine meanwhile.
func TestSandboxStartFailureCleansUp(t *testing.T) {
	requireRoot(t)
	before := machineState(t)

	failed := 0
	for _, after := range []time.Duration{0, 5, 15, 30, 45, 60, 80} {
		ctx, cancel := context.WithTimeout(t.Context(), after*time.Millisecond)
		s, err := Start(ctx, Options{})
		cancel()
		if err != nil {
			t.Logf("start cut after %v: %v", after*time.Millisecond, err)
			failed++
			continue
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}

	if failed == 0 {
		t.Error("no Start was cut short; the test proves nothing")
	}
	if diff := cmp.Diff(before, machineState(t)); diff != "" {
		t.Errorf("left after %d failed starts (-before +after):\n%s", failed, diff)
	}
}
