package spool

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment of the crash test's child process.
const (
	crashChildEnv = "EDGEWARD_SPOOL_CRASH_DIR"
	crashAckEnv   = "EDGEWARD_SPOOL_CRASH_ACK"
	crashRunEnv   = "EDGEWARD_SPOOL_CRASH_RUN"
)

// crashChild appends records from several goroutines and prints
// "seq payload" for each acknowledged one, until it is killed. It also
// acknowledges, as a forwarder would, records up to the number the parent
// passed, so kills also land in cursor writes and segment deletions.
func crashChild() {
	dir := os.Getenv(crashChildEnv)
	ackUpTo, _ := strconv.ParseUint(os.Getenv(crashAckEnv), 10, 64)
	run := os.Getenv(crashRunEnv)

	s, _, err := Open(Options{Dir: dir, SegmentBytes: 8192})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}

	var out sync.Mutex
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				p := fmt.Sprintf("r%s-w%d-%d", run, w, i)
				seq, _, err := s.Append(context.Background(), "c", []byte(p))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "%d %s\n", seq, p)
				out.Unlock()
			}
		}()
	}

	if ackUpTo > 0 {
		r := s.NewReader()
		r.Ack("c", ackUpTo)
	}
	select {}
}

// TestCrashLosesNoAcknowledgedRecord kills a writer 200 times at random
// moments and checks that every record it saw acknowledged survives,
// exactly once and in order.
func TestCrashLosesNoAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	acked := map[uint64]string{}
	var ackFloor uint64
	rng := rand.New(rand.NewPCG(1, 2))
	deadline := time.Now().Add(50 * time.Second)

	for run := range 200 {
		if time.Now().After(deadline) {
			t.Fatalf("crash loop too slow: %d runs in 50 s", run)
		}
		// Every 20 runs, let the child acknowledge half of what exists.
		var ackUpTo uint64
		if run%20 == 19 {
			ackUpTo = maxKey(acked) / 2
			ackFloor = max(ackFloor, ackUpTo)
		}

		lines := runAndKill(t, dir, run, ackUpTo, time.Duration(rng.IntN(20000))*time.Microsecond)
		for seq, p := range lines {
			if old, dup := acked[seq]; dup {
				t.Fatalf("run %d: seq %d acknowledged twice (%q, then %q)", run, seq, old, p)
			}
			acked[seq] = p
		}
		reopenCheck(t, dir, run)
	}

	verifyCrashResult(t, dir, acked, ackFloor)
}

// runAndKill starts the child, kills it after d, and returns the
// acknowledged records it printed (complete lines only).
func runAndKill(t *testing.T, dir string, run int, ackUpTo uint64, d time.Duration) map[uint64]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		crashChildEnv+"="+dir,
		crashAckEnv+"="+strconv.FormatUint(ackUpTo, 10),
		crashRunEnv+"="+strconv.Itoa(run))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}

	lines := make(chan map[uint64]string, 1)
	go func() { lines <- parseAcks(stdout) }()

	time.Sleep(d)
	cmd.Process.Signal(syscall.SIGKILL)
	got := <-lines
	cmd.Wait()
	if strings.Contains(stderr.String(), "child ") {
		t.Fatalf("run %d: child failed: %s", run, stderr.String())
	}
	return got
}

// parseAcks reads "seq payload" lines until EOF; a line cut by the kill
// has no newline and is ignored.
func parseAcks(r interface{ Read([]byte) (int, error) }) map[uint64]string {
	out := map[uint64]string{}
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return out
		}
		seqStr, p, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		seq, perr := strconv.ParseUint(seqStr, 10, 64)
		if ok && perr == nil {
			out[seq] = p
		}
	}
}

// reopenCheck opens the spool as the next daemon start would.
func reopenCheck(t *testing.T, dir string, run int) {
	t.Helper()
	s, rep, err := Open(Options{Dir: dir, SegmentBytes: 8192})
	if err != nil {
		t.Fatalf("run %d: reopen: %v", run, err)
	}
	for _, l := range rep.Losses {
		t.Errorf("run %d: recovery reports loss %+v", run, l)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("run %d: close: %v", run, err)
	}
}

// verifyCrashResult reads the spool and checks every acknowledged record
// above the acknowledged floor.
func verifyCrashResult(t *testing.T, dir string, acked map[uint64]string, floor uint64) {
	t.Helper()
	s, _ := openSpool(t, Options{Dir: dir, SegmentBytes: 8192})
	recs := drain(t, s)

	got := map[uint64]string{}
	var prev uint64
	for _, r := range recs {
		if r.Seq <= prev {
			t.Fatalf("seq %d after %d: out of order or duplicated", r.Seq, prev)
		}
		prev = r.Seq
		got[r.Seq] = string(r.Data)
	}

	var missing, wrong int
	for seq, p := range acked {
		if seq <= floor {
			continue
		}
		switch g, ok := got[seq]; {
		case !ok:
			missing++
		case g != p:
			wrong++
		}
	}
	t.Logf("%d acknowledged records, %d read back, ack floor %d", len(acked), len(recs), floor)
	if missing > 0 || wrong > 0 {
		t.Errorf("%d acknowledged records missing, %d with wrong data", missing, wrong)
	}
}

// maxKey returns the largest key of m.
func maxKey(m map[uint64]string) uint64 {
	var k uint64
	for x := range m {
		k = max(k, x)
	}
	return k
}
