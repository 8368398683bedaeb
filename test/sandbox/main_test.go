package sandbox

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// abandonEnv makes the test binary start a sandbox, print its id, folder
// and daemon PIDs, and exit without Close, like a binary killed by
// -timeout. TestSandboxSweepStale uses it.
const abandonEnv = "EDGEWARD_SANDBOX_ABANDON"

func TestMain(m *testing.M) {
	if os.Getenv(abandonEnv) == "1" {
		os.Exit(abandon())
	}

	if os.Geteuid() == 0 {
		swept, err := SweepStale()
		if len(swept) > 0 || err != nil {
			fmt.Fprintf(os.Stderr, "swept stale sandboxes %v: %v\n", swept, err)
		}
	}
	os.Exit(m.Run())
}

// abandon starts a sandbox and leaves it behind.
func abandon() int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s, err := Start(ctx, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(s.ID, s.Dir)
	for _, p := range s.procs {
		fmt.Println(p.PID())
	}
	return 0
}
