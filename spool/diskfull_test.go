package spool

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tmpfsDir mounts a 2 MiB tmpfs in a temporary directory and unmounts it
// when the test ends. It skips the test where mounting is not permitted.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func TestDiskFull(t *testing.T) {
	tests := []struct {
		name string
		mode WhenFull
	}{
		{"reject", Reject},
		{"drop oldest", DropOldest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tmpfsDir(t)
			opts := Options{Dir: dir, SegmentBytes: 64 << 10, WhenFull: tt.mode}
			s, _, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })

			acked, failures := fillDisk(t, s)
			checkDiskFull(t, s, tt.mode, acked, failures)
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			checkAfterDiskFull(t, opts, tt.mode, acked)
		})
	}
}

// fillDisk appends 4 KiB records, four times what the disk holds, and
// returns the acknowledged ones and the number of failed appends.
func fillDisk(t *testing.T, s *Spool) (map[uint64]string, int) {
	t.Helper()
	acked := map[uint64]string{}
	failures := 0
	for i := range 2000 {
		p := payload(i, 4096)
		seq, _, err := s.Append(context.Background(), "f", []byte(p))
		if err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("append %d: got %v, want ErrFull", i, err)
			}
			failures++
			continue
		}
		acked[seq] = p
	}
	return acked, failures
}

// checkDiskFull checks the outcome while the spool runs.
func checkDiskFull(t *testing.T, s *Spool, mode WhenFull, acked map[uint64]string, failures int) {
	t.Helper()
	st := s.Stats().Streams[0]
	t.Logf("%s: %d acknowledged, %d refused, %d dropped", mode, len(acked), failures, st.Dropped[DropFull])

	switch mode {
	case Reject:
		if failures == 0 || st.Dropped[DropFull] != 0 {
			t.Errorf("reject: %d failures, %d dropped; want failures and no drops", failures, st.Dropped[DropFull])
		}
		// It keeps running: after forwarding, appends succeed again.
		r := s.NewReader()
		defer r.Close()
		if err := r.Ack("f", st.LastSeq); err != nil {
			t.Fatalf("ack: %v", err)
		}
		if _, _, err := s.Append(context.Background(), "f", []byte("after ack")); err != nil {
			t.Errorf("append after freeing space: %v", err)
		}
	case DropOldest:
		if st.Dropped[DropFull] == 0 {
			t.Errorf("drop_oldest dropped nothing on a full disk")
		}
	}
}

// checkAfterDiskFull reopens the spool and compares what it holds with
// what was acknowledged and not dropped or forwarded.
func checkAfterDiskFull(t *testing.T, opts Options, mode WhenFull, acked map[uint64]string) {
	t.Helper()
	s, rep := openSpool(t, opts)
	for _, e := range rep.Events {
		t.Errorf("recovery after disk full repaired: %+v", e)
	}

	recs := drain(t, s)
	if mode == Reject {
		if diff := cmp.Diff([]string{"after ack"}, dataOf(recs)); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
		return
	}
	if len(recs) == 0 {
		t.Fatal("nothing survived")
	}
	for _, r := range recs {
		if acked[r.Seq] != string(r.Data) {
			t.Fatalf("record %d differs from what was acknowledged", r.Seq)
		}
	}
	for seq := range acked {
		if seq >= recs[0].Seq && seq <= recs[len(recs)-1].Seq && !containsSeq(recs, seq) {
			t.Errorf("acknowledged record %d missing from the kept range", seq)
		}
	}
	if _, err := os.Stat(opts.Dir); err != nil {
		t.Fatal(err)
	}
}

// dataOf returns the payloads of recs.
func dataOf(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Data))
	}
	return out
}

// containsSeq reports whether recs holds seq.
func containsSeq(recs []Record, seq uint64) bool {
	for _, r := range recs {
		if r.Seq == seq {
			return true
		}
	}
	return false
}
