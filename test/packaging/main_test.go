package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/edgeward/edgeward/test/sandbox"
)

// The version the test packages are built with, and the date of
// SOURCE_DATE_EPOCH, which the package version carries.
const (
	testVersion        = "v0.9-3-g8f8bc6c-dirty"
	testSourceEpoch    = "1764806400" // 2025-12-04 00:00 UTC
	wantPackageVersion = "0.9+git20251204.3.8f8bc6c+dirty"
)

// repoRoot is the repository, seen from this package's folder.
const repoRoot = "../.."

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Geteuid() == 0 {
		if swept, err := sandbox.SweepStale(); len(swept) > 0 || err != nil {
			fmt.Fprintf(os.Stderr, "swept stale sandboxes %v: %v\n", swept, err)
		}
	}
	code := m.Run()
	if outDir != "" {
		os.RemoveAll(outDir)
	}
	return code
}

var (
	buildOnce sync.Once
	outDir    string // holds the package of this machine's architecture
	nativeDeb string
	buildErr  error
)

// nativePackage builds the package for this machine's architecture once
// per test binary and returns its path.
func nativePackage(t *testing.T) string {
	t.Helper()
	requireTool(t, "dpkg-deb")
	buildOnce.Do(func() {
		outDir, buildErr = os.MkdirTemp("", "edgeward-package-")
		if buildErr == nil {
			nativeDeb, buildErr = buildPackage(runtime.GOARCH, outDir)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return nativeDeb
}

// buildPackage runs scripts/package.sh for arch into out and returns the
// path of the .deb it printed.
func buildPackage(arch, out string) (string, error) {
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "package.sh"))
	cmd.Env = append(os.Environ(), "VERSION="+testVersion, "ARCH="+arch,
		"OUT="+out, "SOURCE_DATE_EPOCH="+testSourceEpoch)
	stdout, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/package.sh (ARCH=%s): %w\n%s", arch, err, stderrOf(err))
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	deb := lines[len(lines)-1]
	if !strings.HasPrefix(deb, out+"/") || !strings.HasSuffix(deb, ".deb") {
		return "", fmt.Errorf("scripts/package.sh printed %q, want a .deb in %s", deb, out)
	}
	return deb, nil
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// requireTool stops the test when a program it needs is missing: a skip
// on a developer's machine, a failure under make test (EDGEWARD_STRICT)
// and in CI, where a skip would hide an untested package.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	if os.Getenv("EDGEWARD_STRICT") != "" || os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (make deps installs it)", name)
	}
	t.Skipf("%s is not installed (make deps installs it)", name)
}

// run runs a program and returns its combined output; a failure is an
// error carrying that output.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// mustRun is run that fails the test.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
