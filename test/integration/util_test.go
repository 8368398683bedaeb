package integration

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/edgeward/edgeward/test/demopolicy"
)

var sighup = syscall.SIGHUP

// rewritePolicy writes the demo policy with p's options over g's config.
func rewritePolicy(t *testing.T, g *gateway, p demopolicy.Params) {
	t.Helper()
	p.BPFFS, p.Dir, p.Cgroup = g.cfg.Paths.BPFFS, g.sb.Dir, g.sb.Cgroup
	if _, _, err := demopolicy.Write(g.sb.Dir, p); err != nil {
		t.Fatal(err)
	}
}

func readDirIfExists(dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
