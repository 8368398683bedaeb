// Package integration runs Edgeward's daemon and CLI against real traffic
// in network sandboxes (test/sandbox): a WireGuard tunnel through
// wireguard-go, tinyproxy, an OT host and an internet host.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgeward/edgeward/test/sandbox"
)

// edgewardBin is the binary under test: EDGEWARD_BIN (make test sets it to
// the one it built), or one built here.
var edgewardBin string

func TestMain(m *testing.M) {
	if os.Getenv(rawSendEnv) != "" {
		os.Exit(rawSend())
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Geteuid() == 0 {
		if swept, err := sandbox.SweepStale(); len(swept) > 0 || err != nil {
			fmt.Fprintf(os.Stderr, "swept stale sandboxes %v: %v\n", swept, err)
		}
	}

	edgewardBin = os.Getenv("EDGEWARD_BIN")
	if edgewardBin == "" {
		dir, err := os.MkdirTemp("", "edgeward-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		edgewardBin = filepath.Join(dir, "edgeward")
		build := exec.Command("go", "build", "-o", edgewardBin, "../../cmd/edgeward")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build edgeward:", err)
			return 1
		}
	}
	return m.Run()
}
