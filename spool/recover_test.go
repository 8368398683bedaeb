package spool

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The corruption fixture: 70 records of 100 bytes (132 on disk) in
// segments of 4096 bytes, i.e. seqs 1-31, 32-62 and 63-70.
const (
	fixRecords = 70
	fixFrame   = headerSize + 100
)

var fixSegs = []uint64{1, 32, 63}

// writeFixture fills a spool directory with the fixture.
func writeFixture(t *testing.T, dir string) {
	t.Helper()
	s, _, err := Open(Options{Dir: dir, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := range fixRecords {
		mustAppend(t, s, "s", payload(i, 100))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// segPath returns the file of the segment starting at base.
func segPath(dir string, base uint64) string {
	return filepath.Join(dir, "s", segmentName(base))
}

// recOff returns the offset of record seq inside its segment.
func recOff(seq uint64) int64 {
	base := fixSegs[0]
	for _, b := range fixSegs {
		if seq >= b {
			base = b
		}
	}
	return int64(seq-base) * fixFrame
}

// patchFile applies f to the bytes of path.
func patchFile(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o640); err != nil {
		t.Fatal(err)
	}
}

// joinRanges concatenates seq lists.
func joinRanges(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestRecovery(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		survive []string
		events  []RecoveryEvent
		losses  []StreamLoss
		nextSeq uint64
	}{
		{
			name:    "clean",
			damage:  func(*testing.T, string) {},
			survive: seqRange("s", 1, 70),
			nextSeq: 71,
		},
		{
			name: "torn tail cut mid-record",
			damage: func(t *testing.T, dir string) {
				os.Truncate(segPath(dir, 63), recOff(70)+50)
			},
			survive: seqRange("s", 1, 69),
			events:  []RecoveryEvent{{Stream: "s", File: segmentName(63), Kind: EventTruncated, Offset: recOff(70), Bytes: 50}},
			nextSeq: 70,
		},
		{
			name: "flipped bit mid-segment",
			damage: func(t *testing.T, dir string) {
				patchFile(t, segPath(dir, 32), func(b []byte) []byte {
					b[recOff(40)+headerSize+7] ^= 0x10
					return b
				})
			},
			survive: joinRanges(seqRange("s", 1, 39), seqRange("s", 41, 70)),
			events:  []RecoveryEvent{{Stream: "s", File: segmentName(32), Kind: EventSkipped, Offset: recOff(40), Bytes: fixFrame}},
			losses:  []StreamLoss{{"s", LossRange{First: 40, Last: 40, Reason: DropCorrupt}}},
			nextSeq: 71,
		},
		{
			name: "flipped bit in a header",
			damage: func(t *testing.T, dir string) {
				patchFile(t, segPath(dir, 32), func(b []byte) []byte {
					b[recOff(45)+9] ^= 0x01 // the sequence number
					return b
				})
			},
			survive: joinRanges(seqRange("s", 1, 44), seqRange("s", 46, 70)),
			events:  []RecoveryEvent{{Stream: "s", File: segmentName(32), Kind: EventSkipped, Offset: recOff(45), Bytes: fixFrame}},
			losses:  []StreamLoss{{"s", LossRange{First: 45, Last: 45, Reason: DropCorrupt}}},
			nextSeq: 71,
		},
		{
			name: "zeroed length field",
			damage: func(t *testing.T, dir string) {
				patchFile(t, segPath(dir, 1), func(b []byte) []byte {
					copy(b[recOff(10)+4:recOff(10)+8], []byte{0, 0, 0, 0})
					return b
				})
			},
			survive: joinRanges(seqRange("s", 1, 9), seqRange("s", 11, 70)),
			events:  []RecoveryEvent{{Stream: "s", File: segmentName(1), Kind: EventSkipped, Offset: recOff(10), Bytes: fixFrame}},
			losses:  []StreamLoss{{"s", LossRange{First: 10, Last: 10, Reason: DropCorrupt}}},
			nextSeq: 71,
		},
		{
			name: "cursor ahead of the data",
			damage: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, "s", cursorFile), encodeCursor(1000), 0o640)
			},
			survive: nil,
			events:  []RecoveryEvent{{Stream: "s", File: cursorFile, Kind: EventCursorAhead}},
			nextSeq: 1000,
		},
		{
			name: "missing segment",
			damage: func(t *testing.T, dir string) {
				os.Remove(segPath(dir, 32))
			},
			survive: joinRanges(seqRange("s", 1, 31), seqRange("s", 63, 70)),
			losses:  []StreamLoss{{"s", LossRange{First: 32, Last: 62, Reason: DropMissing}}},
			nextSeq: 71,
		},
		{
			name: "garbage appended",
			damage: func(t *testing.T, dir string) {
				patchFile(t, segPath(dir, 63), func(b []byte) []byte {
					for i := range 1000 {
						b = append(b, byte(i*7+3))
					}
					return b
				})
			},
			survive: seqRange("s", 1, 70),
			events:  []RecoveryEvent{{Stream: "s", File: segmentName(63), Kind: EventTruncated, Offset: recOff(71), Bytes: 1000}},
			nextSeq: 71,
		},
		{
			name: "empty segment file last",
			damage: func(t *testing.T, dir string) {
				os.WriteFile(segPath(dir, 71), nil, 0o640)
			},
			survive: seqRange("s", 1, 70),
			nextSeq: 71,
		},
		{
			name: "empty segment file in the middle",
			damage: func(t *testing.T, dir string) {
				os.WriteFile(segPath(dir, 20), nil, 0o640)
			},
			survive: seqRange("s", 1, 70),
			events:  []RecoveryEvent{{Stream: "s", File: segmentName(20), Kind: EventRemovedEmpty}},
			nextSeq: 71,
		},
		{
			name: "corrupt cursor file",
			damage: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, "s", cursorFile), []byte("not a cursor"), 0o640)
			},
			survive: seqRange("s", 1, 70),
			events:  []RecoveryEvent{{Stream: "s", File: cursorFile, Kind: EventCursorReset}},
			nextSeq: 71,
		},
		{
			name: "unreadable segment is quarantined",
			damage: func(t *testing.T, dir string) {
				os.Remove(segPath(dir, 32))
				os.Mkdir(segPath(dir, 32), 0o750)
			},
			survive: joinRanges(seqRange("s", 1, 31), seqRange("s", 63, 70)),
			events:  []RecoveryEvent{{Stream: "s", File: segmentName(32), Kind: EventQuarantined}},
			losses:  []StreamLoss{{"s", LossRange{First: 32, Last: 62, Reason: DropQuarantined}}},
			nextSeq: 71,
		},
		{
			name: "segment of pure garbage is quarantined",
			damage: func(t *testing.T, dir string) {
				os.WriteFile(segPath(dir, 32), make([]byte, 5000), 0o640)
			},
			survive: joinRanges(seqRange("s", 1, 31), seqRange("s", 63, 70)),
			events:  []RecoveryEvent{{Stream: "s", File: segmentName(32), Kind: EventQuarantined}},
			losses:  []StreamLoss{{"s", LossRange{First: 32, Last: 62, Reason: DropQuarantined}}},
			nextSeq: 71,
		},
		{
			name: "complete last record with bad data",
			damage: func(t *testing.T, dir string) {
				patchFile(t, segPath(dir, 63), func(b []byte) []byte {
					b[len(b)-1] ^= 0xff
					return b
				})
			},
			survive: seqRange("s", 1, 69),
			events:  []RecoveryEvent{{Stream: "s", File: segmentName(63), Kind: EventTruncated, Offset: recOff(70), Bytes: fixFrame}},
			losses:  []StreamLoss{{"s", LossRange{First: 70, Last: 70, Reason: DropCorrupt}}},
			nextSeq: 71,
		},
		{
			name: "leftover temporary cursor",
			damage: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, "s", cursorTemp), []byte("half"), 0o640)
			},
			survive: seqRange("s", 1, 70),
			events:  []RecoveryEvent{{Stream: "s", File: cursorTemp, Kind: EventRemovedTemp}},
			nextSeq: 71,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFixture(t, dir)
			tt.damage(t, dir)

			s, rep := openSpool(t, Options{Dir: dir, SegmentBytes: 4096})
			ignore := cmpopts.IgnoreFields(RecoveryEvent{}, "Detail")
			if diff := cmp.Diff(tt.events, rep.Events, ignore, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.losses, rep.Losses, ignoreLossTime, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("losses (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.survive, seqsOf(drain(t, s)), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("surviving records (-want +got):\n%s", diff)
			}

			first, _ := mustAppend(t, s, "s", "after recovery")
			if first != tt.nextSeq {
				t.Errorf("next sequence number: got %d, want %d", first, tt.nextSeq)
			}
			checkSecondRecovery(t, s, dir, tt.losses)
		})
	}
}

// checkSecondRecovery closes s and opens dir again: the repair must have
// been made on disk, so nothing is left to repair, and the loss log holds
// what the first recovery found.
func checkSecondRecovery(t *testing.T, s *Spool, dir string, losses []StreamLoss) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, rep := openSpool(t, Options{Dir: dir, SegmentBytes: 4096})

	var skipsOnly []RecoveryEvent
	for _, e := range rep.Events {
		if e.Kind != EventSkipped {
			skipsOnly = append(skipsOnly, e)
		}
	}
	if len(skipsOnly) != 0 || len(rep.Losses) != 0 {
		t.Errorf("second recovery repaired again: events %+v losses %+v", skipsOnly, rep.Losses)
	}

	logged, err := s2.Losses("s")
	if err != nil {
		t.Fatal(err)
	}
	var want []LossRange
	for _, l := range losses {
		want = append(want, l.LossRange)
	}
	if diff := cmp.Diff(want, logged, ignoreLossTime, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("loss log (-want +got):\n%s", diff)
	}
}
