package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/run/netns"

// hosts lists the namespaces of a sandbox in creation order.
var hosts = []Host{OT, Gateway, WAN, VPC}

// nsName returns the namespace name of host h in the sandbox with this id.
func nsName(id string, h Host) string {
	return "ew" + id + "-" + string(h)
}

// newID returns 4 random lower-case hex digits.
func newID() (string, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random sandbox id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// idInUse reports whether a namespace or a WireGuard socket of another
// sandbox already carries this id.
func idInUse(id string) bool {
	paths := []string{
		wgSocket(wgGatewayName(id)),
		wgSocket(wgVPCName(id)),
	}
	for _, h := range hosts {
		paths = append(paths, filepath.Join(netnsDir, nsName(id, h)))
	}

	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// claimID picks a free id and claims it by creating the sandbox's first
// namespace; `ip netns add` fails when the name exists, so two sandboxes
// racing for one id cannot both win. It gives up after a few attempts.
func claimID() (string, error) {
	var lastErr error
	for range 8 {
		id, err := newID()
		if err != nil {
			return "", err
		}
		if idInUse(id) {
			continue
		}

		lastErr = addNamespace(nsName(id, hosts[0]))
		if lastErr == nil {
			return id, nil
		}
	}
	return "", fmt.Errorf("claim a sandbox id: %w", lastErr)
}

// addNamespace creates a named network namespace with `ip netns add`.
// It takes no context on purpose: ip killed half-way leaves a namespace
// file that nobody knows to delete.
func addNamespace(name string) error {
	if err := run(context.Background(), "ip", "netns", "add", name); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// deleteNamespace removes a named network namespace. The kernel frees it
// once no process and no socket holds it any more; a leftover socket
// therefore keeps its interfaces alive, invisible to `ip netns`.
func deleteNamespace(name string) error {
	path := filepath.Join(netnsDir, name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}

	if err := run(context.Background(), "ip", "netns", "delete", name); err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// openNamespace returns a handle on a named namespace. The caller must
// close it.
func openNamespace(name string) (netns.NsHandle, error) {
	h, err := netns.GetFromName(name)
	if err != nil {
		return netns.None(), fmt.Errorf("open namespace %s: %w", name, err)
	}
	return h, nil
}

// runIn runs fn on a fresh goroutine whose OS thread is switched into
// target, and switches the thread back afterwards. Sockets that fn
// creates stay in target. If the thread cannot be switched back, the
// goroutine ends still locked, so that the Go runtime discards the thread
// instead of reusing it in the wrong namespace.
func runIn(target netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- switchAndRun(target, fn) }()
	return <-errc
}

// switchAndRun is runIn's body; it must run on its own goroutine.
func switchAndRun(target netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()

	origin, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current namespace: %w", err)
	}
	defer origin.Close()

	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace: %w", err)
	}

	fnErr := fn()

	if err := netns.Set(origin); err != nil {
		return errors.Join(fnErr, fmt.Errorf("return to namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// setSysctls writes net sysctls (keys like "net.ipv4.ip_forward") in the
// namespace target and reads each back. /proc/sys/net belongs to the
// namespace of the thread that opens it, so this never touches the
// root namespace.
func setSysctls(target netns.NsHandle, values map[string]string) error {
	return runIn(target, func() error {
		for key, want := range values {
			if err := writeSysctl(key, want); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeSysctl writes one sysctl of the current thread's namespace and
// checks that the kernel kept the value.
func writeSysctl(key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}

	got, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("sysctl %s: read back: %w", key, err)
	}
	if strings.TrimSpace(string(got)) != value {
		return fmt.Errorf("sysctl %s: kernel kept %q, want %q",
			key, strings.TrimSpace(string(got)), value)
	}
	return nil
}

// run runs a command to completion and returns an error that carries its
// output when it fails.
func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

// output runs a command to completion and returns its standard output;
// on failure the error carries the standard error.
func output(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.Env = cleanEnv()

	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		return "", fmt.Errorf("%s %s: %w: %s",
			name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// cleanEnv returns the environment without proxy variables, so that no
// tool in a sandbox sends traffic to a proxy outside it.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(strings.ToLower(key), "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
