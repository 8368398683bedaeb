package spool

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRejectWhenFull(t *testing.T) {
	s, _ := openSpool(t, Options{MaxStreamBytes: 16384, SegmentBytes: 4096, WhenFull: Reject})

	var accepted int
	var err error
	for i := range 1000 {
		if _, _, err = s.Append(context.Background(), "r", []byte(payload(i, 100))); err != nil {
			break
		}
		accepted++
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("append past the cap: got %v, want ErrFull", err)
	}
	if want := 16384 / fixFrame; accepted != want {
		t.Errorf("accepted %d records, want %d", accepted, want)
	}
	if diff := cmp.Diff(seqRange("r", 1, uint64(accepted)), seqsOf(drain(t, s))); diff != "" {
		t.Errorf("kept records (-want +got):\n%s", diff)
	}

	// Forwarding frees room again.
	r := s.NewReader()
	defer r.Close()
	if err := r.Ack("r", uint64(accepted)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Append(context.Background(), "r", []byte("room again")); err != nil {
		t.Errorf("append after ack: %v", err)
	}
}

func TestDropOldestWhenFull(t *testing.T) {
	s, _ := openSpool(t, Options{MaxStreamBytes: 16384, SegmentBytes: 4096, WhenFull: DropOldest})
	for i := range 300 {
		mustAppend(t, s, "d", payload(i, 100))
	}

	recs := drain(t, s)
	first := recs[0].Seq
	if diff := cmp.Diff(seqRange("d", first, 300), seqsOf(recs)); diff != "" {
		t.Errorf("kept records must be the newest, contiguous (-want +got):\n%s", diff)
	}
	if (first-1)%31 != 0 {
		t.Errorf("first kept seq %d is not a segment start: drops must be whole segments", first)
	}

	losses, err := s.Losses("d")
	if err != nil {
		t.Fatal(err)
	}
	var covered []string
	for _, l := range losses {
		if l.Reason != DropFull {
			t.Errorf("loss %+v: want reason full", l)
		}
		covered = append(covered, seqRange("d", l.First, l.Last)...)
	}
	if diff := cmp.Diff(seqRange("d", 1, first-1), covered); diff != "" {
		t.Errorf("loss log must cover exactly the dropped seqs (-want +got):\n%s", diff)
	}

	st := s.Stats().Streams[0]
	if st.Dropped[DropFull] != first-1 || st.DiskBytes > 16384 {
		t.Errorf("dropped %d (want %d), disk %d bytes (cap 16384)", st.Dropped[DropFull], first-1, st.DiskBytes)
	}
}

func TestTotalCapDropsOldestAcrossStreams(t *testing.T) {
	s, _ := openSpool(t, Options{MaxBytes: 32768, SegmentBytes: 4096})
	for i := range 200 {
		mustAppend(t, s, "old", payload(i, 100))
	}
	for i := range 200 {
		mustAppend(t, s, "new", payload(i, 100))
	}

	stats := s.Stats()
	if stats.DiskBytes > 32768 {
		t.Errorf("disk bytes %d above the total cap", stats.DiskBytes)
	}
	byName := map[string]StreamStats{}
	for _, ss := range stats.Streams {
		byName[ss.Stream] = ss
	}
	if byName["old"].Dropped[DropFull] == 0 {
		t.Errorf("the older stream lost nothing: %+v", byName["old"])
	}
}

func TestMaxAgeWithClockJumps(t *testing.T) {
	clk := newFakeClock()
	dir := t.TempDir()
	opts := Options{Dir: dir, MaxAge: time.Hour, Now: clk.Now, Monotonic: clk.Mono}
	s, _ := openSpool(t, opts)

	mustAppend(t, s, "a", "A") // seq 1
	clk.advance(30 * time.Minute)
	clk.jumpWall(10 * 24 * time.Hour) // NTP step forward: must not expire A
	s.expire()
	if got := seqsOf(drain(t, s)); len(got) != 1 {
		t.Fatalf("a wall jump forward expired fresh data: %v", got)
	}

	mustAppend(t, s, "a", "B") // seq 2, in a new segment (time roll)
	clk.advance(45 * time.Minute)
	clk.jumpWall(-20 * 24 * time.Hour) // step back: must not keep A
	s.expire()
	if diff := cmp.Diff([]string{"a:2"}, seqsOf(drain(t, s))); diff != "" {
		t.Errorf("after 75 min (-want +got):\n%s", diff)
	}

	clk.advance(20 * time.Minute)
	s.expire()
	if got := seqsOf(drain(t, s)); len(got) != 0 {
		t.Errorf("after 95 min B should be gone: %v", got)
	}

	losses, err := s.Losses("a")
	if err != nil {
		t.Fatal(err)
	}
	want := []LossRange{{First: 1, Last: 1, Reason: DropMaxAge}, {First: 2, Last: 2, Reason: DropMaxAge}}
	if diff := cmp.Diff(want, losses, ignoreLossTime); diff != "" {
		t.Errorf("losses (-want +got):\n%s", diff)
	}
}

func TestMaxAgeAcrossRestartWithClockBehind(t *testing.T) {
	clk := newFakeClock()
	opts := spoolWithOneRecord(t, clk)

	// The gateway restarts with its clock a day behind: A looks like it
	// comes from the future. It must count as new, not live forever.
	clk.jumpWall(-24 * time.Hour)
	s2, _ := openSpool(t, opts)
	s2.expire()
	if got := seqsOf(drain(t, s2)); len(got) != 1 {
		t.Fatalf("record from the future dropped at open: %v", got)
	}
	clk.advance(61 * time.Minute)
	s2.expire()
	if got := seqsOf(drain(t, s2)); len(got) != 0 {
		t.Errorf("record from the future kept past max_age: %v", got)
	}
}

func TestMaxAgeAcrossRestartWithOldData(t *testing.T) {
	clk := newFakeClock()
	opts := spoolWithOneRecord(t, clk)

	// Down for two hours by the wall clock: A is expired at once.
	clk.jumpWall(2 * time.Hour)
	s2, _ := openSpool(t, opts)
	s2.expire()
	if got := seqsOf(drain(t, s2)); len(got) != 0 {
		t.Errorf("old record kept: %v", got)
	}
}

// spoolWithOneRecord leaves a closed spool with max_age one hour holding
// record A in stream a, and returns the options that reopen it.
func spoolWithOneRecord(t *testing.T, clk *fakeClock) Options {
	t.Helper()

	opts := Options{Dir: t.TempDir(), MaxAge: time.Hour, Now: clk.Now, Monotonic: clk.Mono}
	s, _, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "a", "A")
	s.Close()
	return opts
}
