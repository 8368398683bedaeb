package cgroupfs

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

func TestRootIn(t *testing.T) {
	tests := []struct {
		name      string
		mountinfo string
		want      string
		err       error
	}{
		{
			name: "hybrid",
			mountinfo: "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
				"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
				"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
			want: "/sys/fs/cgroup/unified",
		},
		{
			name:      "unified with optional fields",
			mountinfo: "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
			want:      "/sys/fs/cgroup",
		},
		{
			name: "a bind mount of a subtree comes first",
			mountinfo: "90 80 0:30 /edgeward-sandbox-ab12 /tmp/sb/cgroup rw - cgroup2 cgroup2 rw\n" +
				"35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			want: "/sys/fs/cgroup",
		},
		{
			name:      "escaped mount point",
			mountinfo: "35 24 0:30 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n",
			want:      "/mnt/cg two",
		},
		{
			name:      "cgroup v1 only",
			mountinfo: "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
			err:       ErrNotMounted,
		},
		{name: "nothing", mountinfo: "", err: ErrNotMounted},
		{name: "short line", mountinfo: "1 2 - cgroup2\n", err: ErrNotMounted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rootIn([]byte(tt.mountinfo))
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("rootIn = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	if err := Check(dir + "/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v, want fs.ErrNotExist", err)
	}
	if err := Check(dir); !errors.Is(err, ErrNotCgroup2) {
		t.Errorf("a temporary directory: %v, want ErrNotCgroup2", err)
	}
	file := dir + "/f"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(file); !errors.Is(err, ErrNotCgroup2) {
		t.Errorf("a file: %v, want ErrNotCgroup2", err)
	}

	root, err := Root()
	if errors.Is(err, ErrNotMounted) {
		return // nothing to check against on this machine
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(root); err != nil {
		t.Errorf("the hierarchy's root %s: %v", root, err)
	}
	if id, err := ID(root); err != nil || id == 0 {
		t.Errorf("ID(%s) = %d, %v", root, id, err)
	}
}
