package packaging

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unitPath is where the package puts the unit, below the root it is
// installed into.
const unitPath = "lib/systemd/system/edgeward.service"

// unit is a systemd unit file: per section, each key's values in order.
type unit map[string]map[string][]string

// readUnit parses the unit file at path. Comments, blank lines and line
// continuations are handled as systemd does for this file; it fails the
// test on a line it does not understand.
func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	u, section := unit{}, ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, "\\") {
				t.Fatalf("%s:%d: cannot read %q", path, n, line)
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one returns the single value of key in section, failing the test when
// there is none or more than one.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	values := u[section][key]
	if len(values) != 1 {
		t.Fatalf("[%s] %s: %q, want one value", section, key, values)
	}
	return values[0]
}

// TestUnitKeepsEnforcement checks what the unit must do for enforcement
// to have no gap: nothing in it unloads, systemd waits for the daemon's
// READY=1, the daemon comes back after a crash, and it gets no
// CAP_SYS_ADMIN.
func TestUnitKeepsEnforcement(t *testing.T) {
	u := readUnit(t, filepath.Join(repoRoot, "packaging/edgeward.service"))
	svc := u["Service"]

	for key, values := range svc {
		for _, v := range values {
			if strings.HasPrefix(key, "Exec") && strings.Contains(v, "unload") {
				t.Errorf("%s=%s: stopping the service must leave the policy enforcing", key, v)
			}
		}
	}
	for _, key := range []string{"ExecStop", "ExecStopPost"} {
		if v, ok := svc[key]; ok {
			t.Errorf("%s=%q: SIGTERM is how the daemon stops", key, v)
		}
	}

	checks := []struct{ section, key, want string }{
		{"Service", "Type", "notify"},
		{"Service", "ExecStart", "/usr/bin/edgeward run -c /etc/edgeward/edgeward.yaml"},
		{"Service", "ExecReload", "/usr/bin/edgeward reload -c /etc/edgeward/edgeward.yaml"},
		{"Service", "Restart", "on-failure"},
		{"Unit", "Before", "network-pre.target shutdown.target"},
	}
	for _, c := range checks {
		if got := u.one(t, c.section, c.key); got != c.want {
			t.Errorf("[%s] %s=%s, want %s", c.section, c.key, got, c.want)
		}
	}
	if caps := u.one(t, "Service", "CapabilityBoundingSet"); strings.Contains(caps, "CAP_SYS_ADMIN") {
		t.Errorf("CapabilityBoundingSet=%s grants CAP_SYS_ADMIN, which the daemon does not need", caps)
	}

	// The pins must be writable. ProtectKernelTunables=yes makes
	// /sys/fs/bpf read-only even when ReadWritePaths= names it (seen with
	// systemd 252): the daemon could then pin nothing and enforce nothing.
	if !slices.Contains(strings.Fields(u.one(t, "Service", "ReadWritePaths")), "/sys/fs/bpf") {
		t.Errorf("ReadWritePaths= does not name /sys/fs/bpf, the default paths.bpffs's bpffs")
	}
	if v, ok := svc["ProtectKernelTunables"]; ok && !slices.Contains(v, "no") {
		t.Errorf("ProtectKernelTunables=%s leaves /sys/fs/bpf read-only", v)
	}
}

// systemdVerify runs systemd-analyze verify on a unit of the tree at
// root and returns what it printed. Its warnings go to the console only
// with SYSTEMD_LOG_TARGET=console when --root is given.
func systemdVerify(root, name string) (string, error) {
	cmd := exec.Command("systemd-analyze", "--root="+root, "verify", name)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_TARGET=console", "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// unitsLoadStamp is a file systemd-analyze verify creates on the host,
// even with --root.
const unitsLoadStamp = "/run/systemd/systemd-units-load"

// removeIfCreated removes path when the test ends if it does not exist
// now.
func removeIfCreated(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err == nil {
		return
	}
	t.Cleanup(func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove %s: %v", path, err)
		}
	})
}

// TestUnitVerifies runs systemd-analyze verify on the installed unit,
// which also checks that ExecStart's binary exists and is executable.
// Any warning fails the test; a broken copy of the unit proves that
// warnings are seen.
func TestUnitVerifies(t *testing.T) {
	requireTool(t, "systemd-analyze")
	root := installPackage(t)
	removeIfCreated(t, unitsLoadStamp)

	if out, err := systemdVerify(root, "edgeward.service"); err != nil || out != "" {
		t.Errorf("systemd-analyze verify edgeward.service: %v\n%s", err, out)
	}

	unitText, err := os.ReadFile(filepath.Join(root, unitPath))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(unitText), "ProtectHome=yes", "ProtectHome=yes\nProtectHomes=yes", 1)
	brokenPath := filepath.Join(root, "lib/systemd/system/edgeward-broken.service")
	if err := os.WriteFile(brokenPath, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := systemdVerify(root, "edgeward-broken.service"); !strings.Contains(out, "ProtectHomes") {
		t.Errorf("systemd-analyze verify did not report the unknown key ProtectHomes:\n%s", out)
	}
}
