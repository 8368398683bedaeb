package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/testenv"
	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/test/demopolicy"
	"github.com/edgeward/edgeward/test/sandbox"
)

// gateway is a sandbox whose gateway runs edgeward under the demo policy.
type gateway struct {
	t       *testing.T
	sb      *sandbox.Sandbox
	cfgPath string
	cfg     *config.Config
	daemon  *sandbox.Process
	starts  int
}

// newGateway builds a sandbox and writes the demo policy with p's options;
// the daemon is not started yet.
func newGateway(t *testing.T, p demopolicy.Params) *gateway {
	t.Helper()
	testenv.RequireRoot(t)

	sb := sandbox.New(t, sandbox.Options{})
	p.BPFFS = filepath.Join(sb.BPFFS, "edgeward")
	p.Dir = sb.Dir
	p.Cgroup = sb.Cgroup
	path, cfg, err := demopolicy.Write(sb.Dir, p)
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{t: t, sb: sb, cfgPath: path, cfg: cfg}
}

// start runs `edgeward run` in the gateway namespace and waits until the
// uplink is enforced.
func (g *gateway) start(extra ...string) {
	g.t.Helper()
	g.starts++
	args := append([]string{"run", "-c", g.cfgPath}, extra...)
	p, err := g.sb.StartProcess(sandbox.Gateway, fmt.Sprintf("edgeward-%d", g.starts), edgewardBin, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	g.daemon = p
	g.waitReady(10 * time.Second)
}

// waitReady waits until the daemon just started logs that it enforces
// every interface.
func (g *gateway) waitReady(timeout time.Duration) {
	g.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if strings.Contains(g.daemon.Tail(1000), "msg=ready") {
			return
		}
		if g.daemon.Exited() {
			g.t.Fatalf("daemon exited before it was ready:\n%s", g.daemon.Tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("daemon not ready after %s:\n%s", timeout, g.daemon.Tail(20))
}

// kill ends the daemon with SIGKILL, as a crash would.
func (g *gateway) kill() {
	g.t.Helper()
	if err := g.daemon.Signal(os.Kill); err != nil {
		g.t.Fatal(err)
	}
	if err := g.daemon.Wait(5 * time.Second); err == nil || !g.daemon.Exited() {
		// Wait reports the kill as an error; all that matters is the exit.
		if !g.daemon.Exited() {
			g.t.Fatal("daemon did not exit after SIGKILL")
		}
	}
}

// attachments lists our programs in the gateway namespace.
func (g *gateway) attachments() []loader.Attachment {
	g.t.Helper()
	var out []loader.Attachment
	err := g.sb.Do(sandbox.Gateway, func() error {
		var err error
		out, err = loader.Attachments(g.cfg.Paths.BPFFS)
		return err
	})
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// waitAttached polls until iface carries our program, and returns how long
// that took.
func (g *gateway) waitAttached(iface string, timeout time.Duration) time.Duration {
	g.t.Helper()
	began := time.Now()
	for time.Since(began) < timeout {
		for _, a := range g.attachments() {
			if a.Name == iface {
				return time.Since(began)
			}
		}
		if g.daemon != nil && g.daemon.Exited() {
			g.t.Fatalf("daemon exited before %s was enforced:\n%s", iface, g.daemon.Tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("%s not enforced after %s; attachments: %+v", iface, timeout, g.attachments())
	return 0
}

// counters reads the kernel counters through the pins, keyed
// "hook/verdict/reason".
func (g *gateway) counters() map[string]uint64 {
	g.t.Helper()
	maps, err := loader.OpenPinned(g.cfg.Paths.BPFFS)
	if err != nil {
		g.t.Fatal(err)
	}
	defer maps.Close()

	cs, err := maps.Counters()
	if err != nil {
		g.t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, c := range cs {
		out[fmt.Sprintf("%s/%s/%s", c.Hook, c.Verdict, c.Reason)] = c.Packets
	}
	return out
}

// cli runs an edgeward command in the gateway namespace.
func (g *gateway) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := g.sb.Command(ctx, sandbox.Gateway, edgewardBin, args...).CombinedOutput()
	return string(out), err
}

// exitCode returns the exit status carried by err from cli, 0 for nil.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// probe is one connection attempt and whether it must succeed.
type probe struct {
	name  string
	from  sandbox.Host
	kind  string // https, https-proxy, tcp-echo, udp-echo
	addr  string // host:port, or a URL for https
	allow bool
}

// try makes the connection; allowed ones get time to succeed, denied ones
// a short timeout, since a drop shows only as silence.
func (g *gateway) try(p probe) error {
	timeout := time.Second
	if p.allow {
		timeout = 5 * time.Second
	}
	switch p.kind {
	case "https":
		_, err := g.sb.HTTPSGet(p.from, p.addr, "", timeout)
		return err
	case "https-proxy":
		_, err := g.sb.HTTPSGet(p.from, p.addr, sandbox.ProxyURL4, timeout)
		return err
	case "tcp-echo":
		return g.sb.EchoTCP(p.from, p.addr, timeout)
	case "udp-echo":
		return g.sb.EchoUDP(p.from, p.addr, timeout)
	}
	return fmt.Errorf("unknown probe kind %q", p.kind)
}

// expect runs each probe and reports every one whose outcome differs.
func (g *gateway) expect(probes []probe) {
	g.t.Helper()
	for _, p := range probes {
		err := g.try(p)
		if p.allow && err != nil {
			g.t.Errorf("%s: want connected, got %v", p.name, err)
		}
		if !p.allow && err == nil {
			g.t.Errorf("%s: want dropped, but it connected", p.name)
		}
	}
}

func httpsURL(ip string) string { return sandbox.URL(ip) }

func hostPort(ip string, port int) string { return sandbox.Addr(ip, port) }

func contains(s string, parts ...string) error {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return fmt.Errorf("missing %q", p)
		}
	}
	return nil
}
