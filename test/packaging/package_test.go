package packaging

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDebVersion(t *testing.T) {
	tests := []struct {
		describe, want string
	}{
		{"v1.2", "1.2"},
		{"1.2", "1.2"},
		{"v1.2-rc1", "1.2~rc1"},
		{"v1.2-3-gabc1234", "1.2+git20261204.3.abc1234"},
		{"v1.2-rc1-3-gabc1234", "1.2~rc1+git20261204.3.abc1234"},
		{"v1.2-3-gabc1234-dirty", "1.2+git20261204.3.abc1234+dirty"},
		{"b21d3a0", "0.0~git20261204.b21d3a0"},
		{"b21d3a0-dirty", "0.0~git20261204.b21d3a0+dirty"},
		{"dev", "0.0~dev"},
	}
	for _, tt := range tests {
		t.Run(tt.describe, func(t *testing.T) {
			out, err := run(filepath.Join(repoRoot, "scripts", "deb-version.sh"), tt.describe, "20261204")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out); got != tt.want {
				t.Errorf("deb-version %s = %q, want %q", tt.describe, got, tt.want)
			}
			if _, err := exec.LookPath("dpkg"); err == nil {
				if _, err := run("dpkg", "--validate-version", tt.want); err != nil {
					t.Errorf("dpkg refuses %q: %v", tt.want, err)
				}
			}
		})
	}
}

func TestDebVersionRefuses(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		reason string
	}{
		{"tag without a number", []string{"release-1", "20261204"}, "does not start with a version number"},
		{"space in the tag", []string{"v1 2", "20261204"}, "not a Debian version"},
		{"short date", []string{"v1.2", "2026"}, "not YYYYMMDD"},
		{"no date", []string{"v1.2"}, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(filepath.Join(repoRoot, "scripts", "deb-version.sh"), tt.args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("got %v, want exit status 1\n%s", err, out)
			}
			if !strings.Contains(out, tt.reason) {
				t.Errorf("message %q does not say %q", out, tt.reason)
			}
		})
	}
}

func TestPackageControl(t *testing.T) {
	deb := nativePackage(t)

	fields := mustRun(t, "dpkg-deb", "--showformat=${Package} ${Version} ${Architecture}", "--show", deb)
	want := "edgeward " + wantPackageVersion + " " + runtime.GOARCH
	if fields != want {
		t.Errorf("package, version, architecture: %q, want %q", fields, want)
	}
	if base := filepath.Base(deb); base != "edgeward_"+wantPackageVersion+"_"+runtime.GOARCH+".deb" {
		t.Errorf("file name %s does not carry the package version and architecture", base)
	}

	conffiles := mustRun(t, "dpkg-deb", "--info", deb, "conffiles")
	if diff := cmp.Diff([]string{"/etc/edgeward/edgeward.yaml"}, strings.Fields(conffiles)); diff != "" {
		t.Errorf("conffiles (-want +got):\n%s", diff)
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		if _, err := run("dpkg-deb", "--info", deb, script); err != nil {
			t.Errorf("no %s in the package: %v", script, err)
		}
	}
}

// contentsEntry is one line of dpkg-deb --contents.
type contentsEntry struct {
	mode, owner string
}

// packageContents lists the files and folders of deb by path (without
// the leading "."), with mode and owner.
func packageContents(t *testing.T, deb string) map[string]contentsEntry {
	t.Helper()
	entries := map[string]contentsEntry{}
	for _, line := range strings.Split(strings.TrimSpace(mustRun(t, "dpkg-deb", "--contents", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("unexpected dpkg-deb --contents line %q", line)
		}
		path := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		entries[path] = contentsEntry{mode: f[0], owner: f[1]}
	}
	return entries
}

func TestPackageContents(t *testing.T) {
	entries := packageContents(t, nativePackage(t))

	want := map[string]string{
		"/usr/bin/edgeward":                           "-rwxr-xr-x",
		"/lib/systemd/system/edgeward.service":        "-rw-r--r--",
		"/etc/edgeward/edgeward.yaml":                 "-rw-r--r--",
		"/usr/share/doc/edgeward/README.md":           "-rw-r--r--",
		"/usr/share/doc/edgeward/config/README.md":    "-rw-r--r--",
		"/usr/share/doc/edgeward/copyright":           "-rw-r--r--",
		"/usr/share/doc/edgeward/licenses/go/LICENSE": "-rw-r--r--",
	}
	for path, mode := range want {
		e, ok := entries[path]
		switch {
		case !ok:
			t.Errorf("%s is not in the package", path)
		case e.mode != mode:
			t.Errorf("%s has mode %s, want %s", path, e.mode, mode)
		}
	}
	for path, e := range entries {
		if e.owner != "root/root" {
			t.Errorf("%s is owned by %s, want root/root", path, e.owner)
		}
	}
}

// TestPackageLicenses checks that the licence of every module linked into
// the binary is shipped: the binary is static, so it redistributes them.
func TestPackageLicenses(t *testing.T) {
	entries := packageContents(t, nativePackage(t))

	modules := mustRun(t, "go", "list", "-deps",
		"-f", "{{with .Module}}{{if not .Main}}{{.Path}}{{end}}{{end}}", repoRoot+"/cmd/edgeward")
	seen := map[string]bool{}
	for _, mod := range strings.Fields(modules) {
		if seen[mod] {
			continue
		}
		seen[mod] = true
		if !hasFileUnder(entries, "/usr/share/doc/edgeward/licenses/"+mod+"/") {
			t.Errorf("no licence file of %s under /usr/share/doc/edgeward/licenses", mod)
		}
	}
	if len(seen) == 0 {
		t.Fatal("go list found no modules linked into cmd/edgeward")
	}
}

func hasFileUnder(entries map[string]contentsEntry, dir string) bool {
	for path, e := range entries {
		if strings.HasPrefix(path, dir) && strings.HasPrefix(e.mode, "-") {
			return true
		}
	}
	return false
}

// installPackage installs the package with dpkg into a fresh temporary
// root, with a dpkg database of its own, and returns the root. The
// maintainer scripts run outside a chroot with DPKG_ROOT set, in which
// case they leave this machine's systemd alone.
func installPackage(t *testing.T) string {
	t.Helper()
	requireTool(t, "dpkg")
	deb := nativePackage(t)

	root := t.TempDir()
	for _, dir := range []string{"info", "updates", "triggers"} {
		if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg", dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "dpkg", dpkgArgs(root, "--install", deb)...)
	return root
}

func dpkgArgs(root string, args ...string) []string {
	return append([]string{"--root=" + root, "--force-not-root", "--force-script-chrootless",
		"--log=/dev/null"}, args...)
}

func TestInstallIntoTemporaryRoot(t *testing.T) {
	root := installPackage(t)
	bin := filepath.Join(root, "usr/bin/edgeward")
	conf := filepath.Join(root, "etc/edgeward/edgeward.yaml")

	status := mustRun(t, "dpkg", "--root="+root, "--status", "edgeward")
	for _, want := range []string{"Status: install ok installed", "Version: " + wantPackageVersion,
		"Conffiles:\n /etc/edgeward/edgeward.yaml "} {
		if !strings.Contains(status, want) {
			t.Errorf("dpkg --status does not show %q:\n%s", want, status)
		}
	}

	version := mustRun(t, bin, "version")
	if want := "edgeward " + testVersion + " "; !strings.HasPrefix(version, want) {
		t.Errorf("installed edgeward version says %q, want it to start with %q", version, want)
	}
	if want := runtime.GOOS + "/" + runtime.GOARCH; !strings.Contains(version, want) {
		t.Errorf("installed edgeward version says %q, want %s", version, want)
	}

	valid := mustRun(t, bin, "validate", "-c", conf)
	if !strings.HasPrefix(valid, conf+": valid:") {
		t.Errorf("validate of the example: %q, want %q", valid, conf+": valid: ...")
	}
}

// TestRemoveKeepsConfiguration removes the package (the edited example
// stays, as a conffile does) and then purges it.
func TestRemoveKeepsConfiguration(t *testing.T) {
	root := installPackage(t)
	bin := filepath.Join(root, "usr/bin/edgeward")
	conf := filepath.Join(root, "etc/edgeward/edgeward.yaml")
	if err := os.WriteFile(conf, []byte("mode: enforce\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	mustRun(t, "dpkg", dpkgArgs(root, "--remove", "edgeward")...)
	if _, err := os.Stat(bin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after dpkg --remove, %s: %v, want it gone", bin, err)
	}
	if data, err := os.ReadFile(conf); err != nil || string(data) != "mode: enforce\n" {
		t.Errorf("after dpkg --remove, the edited configuration: %q, %v; want it kept", data, err)
	}

	mustRun(t, "dpkg", dpkgArgs(root, "--purge", "edgeward")...)
	if _, err := os.Stat(conf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after dpkg --purge, %s: %v, want it gone", conf, err)
	}
}

// TestArm64Package builds the arm64 package (no cgo, so it cross-builds
// here) and checks its architecture and that of the binary in it.
func TestArm64Package(t *testing.T) {
	requireTool(t, "dpkg-deb")
	out := t.TempDir()
	deb, err := buildPackage("arm64", out)
	if err != nil {
		t.Fatal(err)
	}
	if arch := mustRun(t, "dpkg-deb", "--field", deb, "Architecture"); strings.TrimSpace(arch) != "arm64" {
		t.Errorf("Architecture: %q, want arm64", arch)
	}

	tree := filepath.Join(out, "tree")
	mustRun(t, "dpkg-deb", "--extract", deb, tree)
	f, err := elf.Open(filepath.Join(tree, "usr/bin/edgeward"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("usr/bin/edgeward is for %s, want %s", f.Machine, elf.EM_AARCH64)
	}
}
