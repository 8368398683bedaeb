package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/edgeward/edgeward/internal/cgroupfs"
)

// TestValidateGuardCgroup: validate checks paths.cgroup on this machine,
// names its line and field when it is no cgroup v2 directory, and says
// which cgroup the socket guard would cover. It needs no root.
func TestValidateGuardCgroup(t *testing.T) {
	dir := t.TempDir()
	root, err := cgroupfs.Root()
	if err != nil {
		t.Fatalf("this test needs a cgroup v2 hierarchy: %v", err)
	}
	tests := []struct {
		name   string
		paths  string
		status int
		out    string // a regular expression for stdout and stderr
	}{
		{"default", "", exitOK, `socket guard: cgroup ` + regexp.QuoteMeta(root) + `\n`},
		{"missing", "paths:\n  cgroup: " + dir + "/none\n", exitUsage,
			regexp.QuoteMeta(dir) + `/edgeward.yaml:3:11: paths.cgroup: ".*/none" does not exist`},
		{"not cgroup v2", "paths:\n  cgroup: " + dir + "\n", exitUsage,
			`edgeward.yaml:3:11: paths.cgroup: not a cgroup v2 directory: ` + regexp.QuoteMeta(dir) + ` is on a .* file system; the cgroup v2 hierarchy is mounted at ` + regexp.QuoteMeta(root)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "edgeward.yaml")
			if err := os.WriteFile(path, []byte("mode: audit\n"+tt.paths), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			status := cmdValidate([]string{"-c", path}, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if status != tt.status || !regexp.MustCompile(tt.out).MatchString(out) {
				t.Errorf("exit %d, want %d; output does not match %q:\n%s", status, tt.status, tt.out, out)
			}
		})
	}
}
