package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	s, _ := openSpool(t, Options{})

	mustAppend(t, s, "a", "a1", "a2")
	mustAppend(t, s, "b", "b1")
	mustAppend(t, s, "a", "a3")

	got := map[string][]string{}
	var seqs []string
	for _, r := range drain(t, s) {
		got[r.Stream] = append(got[r.Stream], string(r.Data))
		seqs = append(seqs, fmt.Sprintf("%s:%d", r.Stream, r.Seq))
	}

	want := map[string][]string{"a": {"a1", "a2", "a3"}, "b": {"b1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	wantSeqs := []string{"a:1", "a:2", "a:3", "b:1"}
	if diff := cmp.Diff(wantSeqs, seqs); diff != "" {
		t.Errorf("sequence numbers (-want +got):\n%s", diff)
	}
}

func TestAppendValidation(t *testing.T) {
	s, _ := openSpool(t, Options{MaxRecordBytes: 10})

	tests := []struct {
		name    string
		stream  string
		records [][]byte
		want    error
	}{
		{"bad name upper", "Bad", [][]byte{[]byte("x")}, ErrBadStreamName},
		{"bad name dot first", ".x", [][]byte{[]byte("x")}, ErrBadStreamName},
		{"bad name slash", "a/b", [][]byte{[]byte("x")}, ErrBadStreamName},
		{"bad name too long", string(make([]byte, 65)), [][]byte{[]byte("x")}, ErrBadStreamName},
		{"empty record", "ok", [][]byte{{}}, ErrEmptyRecord},
		{"too large", "ok", [][]byte{make([]byte, 11)}, ErrRecordTooLarge},
		{"fits", "ok.name_1-x", [][]byte{make([]byte, 10)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.Append(context.Background(), tt.stream, tt.records...)
			if !errors.Is(err, tt.want) {
				t.Errorf("append: got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReopenContinuesNumbering(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 4096}

	s, _, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		mustAppend(t, s, "s", payload(i, 100))
	}
	r := s.NewReader()
	if err := r.Ack("s", 40); err != nil {
		t.Fatalf("ack: %v", err)
	}
	r.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s2, rep := openSpool(t, opts)
	if len(rep.Events) != 0 || len(rep.Losses) != 0 {
		t.Errorf("clean reopen repaired something: %+v", rep)
	}
	first, last := mustAppend(t, s2, "s", "after", "restart")
	if first != 101 || last != 102 {
		t.Errorf("numbering after restart: got %d..%d, want 101..102", first, last)
	}

	got := seqsOf(drain(t, s2))
	if diff := cmp.Diff(seqRange("s", 41, 102), got); diff != "" {
		t.Errorf("records after reopen (-want +got):\n%s", diff)
	}
}

func TestAckDeletesSegmentsBehindCursor(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, Options{Dir: dir, SegmentBytes: 4096})
	for i := range 100 {
		mustAppend(t, s, "s", payload(i, 100))
	}
	before := segmentFiles(t, filepath.Join(dir, "s"))

	r := s.NewReader()
	defer r.Close()
	recs, err := r.Next(context.Background(), 1000)
	if err != nil || len(recs) == 0 {
		t.Fatalf("next: %d records, %v", len(recs), err)
	}
	if err := r.Ack("s", 70); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if err := r.Ack("s", 500); !errors.Is(err, ErrAckRange) {
		t.Errorf("ack beyond the end: got %v, want ErrAckRange", err)
	}

	after := segmentFiles(t, filepath.Join(dir, "s"))
	if len(after) >= len(before) {
		t.Errorf("segments: %d before ack, %d after; want fewer", len(before), len(after))
	}
	st := s.Stats().Streams[0]
	wantStats := []int64{30, 70}
	if diff := cmp.Diff(wantStats, []int64{st.BacklogRecords, int64(st.Forwarded)}); diff != "" {
		t.Errorf("backlog, forwarded (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seqRange("s", 71, 100), seqsOf(drain(t, s))); diff != "" {
		t.Errorf("records after ack (-want +got):\n%s", diff)
	}
}

// segmentFiles lists the segment files of a stream directory.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNextBlocksUntilDurable(t *testing.T) {
	s, _ := openSpool(t, Options{})
	r := s.NewReader()
	defer r.Close()

	got := make(chan []Record, 1)
	go func() {
		recs, _ := r.Next(context.Background(), 10)
		got <- recs
	}()

	select {
	case <-got:
		t.Fatal("next returned before anything was appended")
	case <-time.After(50 * time.Millisecond):
	}
	mustAppend(t, s, "late", "hello")

	select {
	case recs := <-got:
		if diff := cmp.Diff([]string{"late:1"}, seqsOf(recs)); diff != "" {
			t.Errorf("next (-want +got):\n%s", diff)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("next did not wake up")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.Next(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("next on empty spool: got %v, want deadline exceeded", err)
	}
}

func TestGroupCommit(t *testing.T) {
	var fsyncs atomic.Int64
	s, _ := openSpool(t, Options{fsyncHook: func() { fsyncs.Add(1) }})
	mustAppend(t, s, "g", "warm-up")
	fsyncs.Store(0)

	const writers, each = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, _, err := s.Append(context.Background(), "g", []byte(payload(w*each+i, 200)))
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}

	n := fsyncs.Load()
	t.Logf("%d appends, %d fsyncs", writers*each, n)
	if n*4 > writers*each {
		t.Errorf("%d fsyncs for %d appends: group commit does not group", n, writers*each)
	}
	if got := len(drain(t, s)); got != writers*each+1 {
		t.Errorf("records: got %d, want %d", got, writers*each+1)
	}
}

func TestAppendReturnsOnlyAfterFsync(t *testing.T) {
	gate := make(chan struct{})
	var blocking atomic.Bool
	hook := func() {
		if blocking.Load() {
			<-gate
		}
	}
	s, _ := openSpool(t, Options{fsyncHook: hook})
	mustAppend(t, s, "f", "creates the stream and its segment")

	blocking.Store(true)
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Append(context.Background(), "f", []byte("waits"))
		done <- err
	}()

	select {
	case <-done:
		t.Fatal("append returned while its fsync was still running")
	case <-time.After(100 * time.Millisecond):
	}
	blocking.Store(false)
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("append: %v", err)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	openSpool(t, Options{Dir: dir})
	if _, _, err := Open(Options{Dir: dir}); err == nil {
		t.Fatal("second open of the same directory succeeded")
	}
}

func TestTooManyStreams(t *testing.T) {
	s, _ := openSpool(t, Options{MaxStreams: 2})
	mustAppend(t, s, "one", "x")
	mustAppend(t, s, "two", "x")
	if _, _, err := s.Append(context.Background(), "three", []byte("x")); !errors.Is(err, ErrTooManyStreams) {
		t.Errorf("third stream: got %v, want ErrTooManyStreams", err)
	}
}

func TestDiscardRecordsDeadLetter(t *testing.T) {
	s, _ := openSpool(t, Options{})
	mustAppend(t, s, "d", "1", "2", "3")
	r := s.NewReader()
	defer r.Close()

	if err := r.Discard("d", 2, DropDeadLetter); err != nil {
		t.Fatalf("discard: %v", err)
	}
	losses, err := s.Losses("d")
	if err != nil {
		t.Fatal(err)
	}
	want := []LossRange{{First: 1, Last: 2, Reason: DropDeadLetter}}
	if diff := cmp.Diff(want, losses, ignoreLossTime); diff != "" {
		t.Errorf("losses (-want +got):\n%s", diff)
	}
	if got := s.Stats().Streams[0].Dropped[DropDeadLetter]; got != 2 {
		t.Errorf("dead_letter count: got %d, want 2", got)
	}
	if diff := cmp.Diff([]string{"d:3"}, seqsOf(drain(t, s))); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

var ignoreLossTime = cmp.FilterPath(func(p cmp.Path) bool {
	return p.Last().String() == ".Time"
}, cmp.Ignore())

func TestMain_noStrayFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, Options{Dir: dir})
	mustAppend(t, s, "x", "1")
	r := s.NewReader()
	r.Ack("x", 1)
	r.Close()

	entries, err := os.ReadDir(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"00000000000000000001.seg", "cursor"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}
