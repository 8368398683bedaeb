package packaging

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgeward/edgeward/internal/testenv"
	"github.com/edgeward/edgeward/test/sandbox"
)

// notifyTimeout bounds the wait for one message from the daemon on the
// notify socket, about what TimeoutStartSec would allow it.
const notifyTimeout = 20 * time.Second

// TestServiceCapabilities runs the installed daemon in a sandbox gateway
// the way the unit does: with only the unit's CapabilityBoundingSet, no
// new privileges, and NOTIFY_SOCKET. Under the example configuration
// (in enforce mode, with local paths and without the forwarder) it must
// report READY=1, take two reloads, stop on SIGTERM with STOPPING=1
// while the pinned policy keeps dropping what it denies, and start again
// on those pins, as `systemctl restart` does.
func TestServiceCapabilities(t *testing.T) {
	testenv.RequireRoot(t)
	requireTool(t, "setpriv")
	root := installPackage(t)
	sb := sandbox.New(t, sandbox.Options{WithoutWireGuard: true, WithoutProxy: true})

	denied := sandbox.Addr(sandbox.InternetHost4, sandbox.HTTPSPort)
	if err := sb.DialTCP(sandbox.Gateway, denied, 2*time.Second); err != nil {
		t.Fatalf("before the daemon runs, the gateway cannot reach %s: %v", denied, err)
	}

	d := &serviceDaemon{
		sb:     sb,
		bin:    filepath.Join(root, "usr/bin/edgeward"),
		conf:   sandboxConfig(t, filepath.Join(root, "etc/edgeward/edgeward.yaml"), sb),
		prefix: setprivArgs(t, readUnit(t, filepath.Join(root, unitPath))),
		notify: listenNotify(t, filepath.Join(sb.Dir, "notify")),
	}
	p := d.start(t, "edgeward")
	d.expect(t, p, "READY=1")
	d.reload(t)
	d.reload(t)
	if err := sb.DialTCP(sandbox.Gateway, denied, time.Second); err == nil {
		t.Errorf("the daemon runs and the gateway still reaches %s", denied)
	}

	d.stop(t, p)
	if err := sb.DialTCP(sandbox.Gateway, denied, time.Second); err == nil {
		t.Errorf("with the daemon stopped the gateway reaches %s: enforcement did not stay", denied)
	}

	restarted := d.start(t, "edgeward-restarted")
	d.expect(t, restarted, "READY=1")
	d.stop(t, restarted)
}

// serviceDaemon starts the installed binary in the sandbox gateway under
// the unit's restrictions.
type serviceDaemon struct {
	sb     *sandbox.Sandbox
	bin    string
	conf   string
	prefix []string // setpriv and its arguments
	notify *net.UnixConn
}

// start starts edgeward run; the sandbox stops it when the test ends.
func (d *serviceDaemon) start(t *testing.T, logName string) *sandbox.Process {
	t.Helper()
	args := append(d.prefix[1:], d.bin, "run", "-c", d.conf)
	p, err := d.sb.StartProcess(sandbox.Gateway, logName, d.prefix[0], args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// expect waits for the next message on the notify socket and fails the
// test unless it is want.
func (d *serviceDaemon) expect(t *testing.T, p *sandbox.Process, want string) {
	t.Helper()
	buf := make([]byte, 4096)
	d.notify.SetReadDeadline(time.Now().Add(notifyTimeout))
	n, err := d.notify.Read(buf)
	if err != nil {
		t.Fatalf("waiting for %s from %s: %v\n%s", want, p.Name, err, p.Tail(20))
	}
	if got := string(buf[:n]); got != want {
		t.Fatalf("%s sent %q, want %q\n%s", p.Name, got, want, p.Tail(20))
	}
}

// reload runs edgeward reload as ExecReload does, under the same
// restrictions.
func (d *serviceDaemon) reload(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	args := append(d.prefix[1:], d.bin, "reload", "-c", d.conf)
	out, err := d.sb.Command(ctx, sandbox.Gateway, d.prefix[0], args...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "reloaded: policy generation") {
		t.Fatalf("edgeward reload: %v\n%s", err, out)
	}
}

// stop sends SIGTERM as systemctl stop does and expects STOPPING=1 and
// exit status 0.
func (d *serviceDaemon) stop(t *testing.T, p *sandbox.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.expect(t, p, "STOPPING=1")
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatalf("%s after SIGTERM: %v\n%s", p.Name, err, p.Tail(20))
	}
}

// setprivArgs turns the unit's CapabilityBoundingSet and NoNewPrivileges
// into a setpriv command line that runs a program as the unit would run
// it as root: with exactly those capabilities.
func setprivArgs(t *testing.T, u unit) []string {
	t.Helper()
	var caps []string
	for _, c := range strings.Fields(u.one(t, "Service", "CapabilityBoundingSet")) {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	if len(caps) == 0 {
		t.Fatal("the unit's CapabilityBoundingSet is empty")
	}
	args := []string{"setpriv", "--bounding-set=-all," + strings.Join(caps, ","), "--inh-caps=-all"}
	if u.one(t, "Service", "NoNewPrivileges") == "yes" {
		args = append(args, "--no-new-privs")
	}
	return append(args, "--")
}

// listenNotify opens the socket systemd would pass in NOTIFY_SOCKET and
// puts its path there for the daemons the test starts.
func listenNotify(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// sandboxConfig writes the installed example configuration for the
// sandbox gateway and returns its path: enforce instead of audit, pins,
// state, socket and the socket guard's cgroup in the sandbox, and no forwarder (its certificates do
// not exist here, and nothing may leave the sandbox).
func sandboxConfig(t *testing.T, example string, sb *sandbox.Sandbox) string {
	t.Helper()
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", example, err)
	}

	spool, ok := doc["spool"].(map[string]any)
	if !ok {
		t.Fatalf("%s has no spool section", example)
	}
	delete(spool, "forward")
	doc["mode"] = "enforce"
	doc["paths"] = map[string]any{
		"bpffs":  filepath.Join(sb.BPFFS, "edgeward"),
		"state":  filepath.Join(sb.Dir, "state"),
		"socket": filepath.Join(sb.Dir, "run", "edgeward.sock"),
		"cgroup": sb.Cgroup,
	}

	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sb.Dir, "edgeward.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
