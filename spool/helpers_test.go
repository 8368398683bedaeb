package spool

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain checks that no goroutine outlives the tests.
func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}

	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !fuzzing() && !settles(before) {
		fmt.Fprintf(os.Stderr, "goroutine leak: %d before, %d after\n", before, runtime.NumGoroutine())
		code = 1
	}
	os.Exit(code)
}

// fuzzing reports whether the fuzzer runs, which keeps goroutines of its
// own.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// settles waits up to two seconds for the goroutine count to drop to n.
func settles(n int) bool {
	for range 200 {
		if runtime.NumGoroutine() <= n {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// openSpool opens a spool with opts (Dir defaults to a temporary one) and
// closes it when the test ends.
func openSpool(t *testing.T, opts Options) (*Spool, *RecoveryReport) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}

	s, rep, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, rep
}

// mustAppend appends records and fails the test on error.
func mustAppend(t *testing.T, s *Spool, stream string, records ...string) (uint64, uint64) {
	t.Helper()
	bs := make([][]byte, len(records))
	for i, r := range records {
		bs[i] = []byte(r)
	}

	first, last, err := s.Append(context.Background(), stream, bs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return first, last
}

// payload returns the test payload of record i, padded to n bytes.
func payload(i, n int) string {
	s := fmt.Sprintf("rec-%06d-", i)
	if len(s) < n {
		s += strings.Repeat("x", n-len(s))
	}
	return s[:n]
}

// drain returns every record a fresh reader can read now, without
// blocking.
func drain(t *testing.T, s *Spool) []Record {
	t.Helper()
	r := s.NewReader()
	defer r.Close()
	return drainReader(t, r)
}

// drainReader reads until nothing is left.
func drainReader(t *testing.T, r *Reader) []Record {
	t.Helper()
	var out []Record
	for range 1 << 20 {
		r.s.mu.Lock()
		names := r.s.streamNamesLocked()
		r.s.mu.Unlock()

		recs, err := r.poll(names, 1000)
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
	}
	t.Fatal("drain did not end")
	return nil
}

// seqsOf returns stream:seq for each record.
func seqsOf(recs []Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s:%d", r.Stream, r.Seq))
	}
	return out
}

// seqRange returns stream:first..stream:last.
func seqRange(stream string, first, last uint64) []string {
	var out []string
	for i := first; i <= last; i++ {
		out = append(out, fmt.Sprintf("%s:%d", stream, i))
	}
	return out
}

// fakeClock is a wall clock and a monotonic clock moved by hand.
type fakeClock struct {
	mu   chan struct{}
	wall time.Time
	mono time.Duration
}

// newFakeClock starts both clocks at a fixed point.
func newFakeClock() *fakeClock {
	c := &fakeClock{mu: make(chan struct{}, 1), wall: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	return c
}

func (c *fakeClock) lock()   { c.mu <- struct{}{} }
func (c *fakeClock) unlock() { <-c.mu }

// Now returns the wall clock.
func (c *fakeClock) Now() time.Time {
	c.lock()
	defer c.unlock()
	return c.wall
}

// Mono returns the monotonic clock.
func (c *fakeClock) Mono() time.Duration {
	c.lock()
	defer c.unlock()
	return c.mono
}

// advance moves both clocks by d.
func (c *fakeClock) advance(d time.Duration) {
	c.lock()
	defer c.unlock()
	c.wall = c.wall.Add(d)
	c.mono += d
}

// jumpWall moves only the wall clock, as an NTP step or a bad RTC does.
func (c *fakeClock) jumpWall(d time.Duration) {
	c.lock()
	defer c.unlock()
	c.wall = c.wall.Add(d)
}
