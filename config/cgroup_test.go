package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/internal/cgroupfs"
)

// TestGuardCgroup: a file without paths.cgroup guards the root of the
// cgroup v2 hierarchy; a paths.cgroup that is missing or on another file
// system is an error at its line, column and field.
func TestGuardCgroup(t *testing.T) {
	root, rootErr := cgroupfs.Root()
	dir := t.TempDir()
	type guardCase struct {
		name string
		yaml string
		want string // the directory, when msg is empty
		line int
		msg  string // part of the one problem expected
	}
	tests := []guardCase{
		{name: "missing key", yaml: "mode: enforce\n", want: root},
		{name: "missing directory", yaml: "mode: enforce\npaths:\n  cgroup: " + dir + "/gone\n", line: 3, msg: "does not exist"},
		{name: "not cgroup v2", yaml: "paths: {cgroup: " + dir + "}\n", line: 1, msg: "not a cgroup v2 directory: " + dir + " is on a"},
	}
	if rootErr == nil {
		tests = append(tests, guardCase{name: "the root itself", yaml: "paths: {cgroup: " + root + "/}\n", want: root})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("g.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got, err := cfg.GuardCgroup()
			if tt.msg == "" {
				if errors.Is(rootErr, cgroupfs.ErrNotMounted) && tt.want == "" {
					if !errors.Is(err, ErrNoCgroup2) {
						t.Errorf("without cgroup v2: %v, want ErrNoCgroup2", err)
					}
					return
				}
				if err != nil || got != tt.want {
					t.Errorf("GuardCgroup = %q, %v; want %q", got, err, tt.want)
				}
				return
			}

			var list ErrorList
			if !errors.As(err, &list) || len(list) != 1 {
				t.Fatalf("GuardCgroup = %q, %v; want one problem", got, err)
			}
			e := list[0]
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", e.Msg, tt.msg)
			}
			want := Error{File: "g.yaml", Line: tt.line, Column: e.Column, Field: "paths.cgroup", Msg: e.Msg}
			if diff := cmp.Diff(want, *e); diff != "" || e.Column == 0 {
				t.Errorf("problem (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCgroup(t *testing.T) {
	cfg, err := Parse("p.yaml", []byte("paths:\n  cgroup: /sys/fs/cgroup/edge/\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Paths{
		BPFFS: DefaultBPFFS, State: DefaultState, Socket: DefaultSocket,
		Cgroup: "/sys/fs/cgroup/edge", CgroupAt: Position{Line: 2, Column: 11},
	}
	if diff := cmp.Diff(want, cfg.Paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}

	_, err = Parse("p.yaml", []byte("paths: {cgroup: sys/fs/cgroup}\n"))
	if err == nil || !strings.Contains(err.Error(), `p.yaml:1:17: paths.cgroup: "sys/fs/cgroup" is not an absolute path`) {
		t.Errorf("relative paths.cgroup: %v", err)
	}
}
