package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// EventKind names what recovery did to a file.
type EventKind string

// Recovery event kinds.
const (
	// EventTruncated: bytes after the last valid record were cut off (a
	// torn write or appended garbage).
	EventTruncated EventKind = "truncated"
	// EventSkipped: damaged bytes between valid records were stepped over;
	// they stay in the file and are skipped again on every read.
	EventSkipped EventKind = "skipped"
	// EventQuarantined: an unreadable segment was moved to quarantine/.
	EventQuarantined EventKind = "quarantined"
	// EventRemovedEmpty: an empty segment that was not the last was removed.
	EventRemovedEmpty EventKind = "removed_empty"
	// EventRemovedTemp: a leftover temporary cursor file was removed.
	EventRemovedTemp EventKind = "removed_temp"
	// EventCursorReset: the cursor file was damaged; delivery restarts at
	// the oldest record (duplicates rather than loss).
	EventCursorReset EventKind = "cursor_reset"
	// EventCursorAhead: the cursor pointed past the durable data; nothing
	// is delivered below it and numbering continues at the cursor, so that
	// no sequence number is ever given out twice.
	EventCursorAhead EventKind = "cursor_ahead"
)

// RecoveryEvent is one repair made by Open.
type RecoveryEvent struct {
	Stream string
	File   string // base name inside the stream directory
	Kind   EventKind
	Offset int64  // where in the file, when it applies
	Bytes  int64  // how many bytes, when it applies
	Detail string // the cause, for quarantine and cursor events
}

// StreamLoss is a loss found by recovery.
type StreamLoss struct {
	Stream string
	LossRange
}

// RecoveryReport says what Open found and repaired.
type RecoveryReport struct {
	Streams  int
	Segments int
	Records  int64 // records not yet acknowledged
	Bytes    int64 // segment bytes kept
	Events   []RecoveryEvent
	Losses   []StreamLoss // sequence ranges lost, also in the loss logs
	Duration time.Duration
}

// recoverAll recovers every stream directory under Dir.
func (s *Spool) recoverAll() (*RecoveryReport, error) {
	start := time.Now()
	rep := &RecoveryReport{}

	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !ValidStreamName(e.Name()) {
			continue
		}
		if err := s.recoverStream(e.Name(), rep); err != nil {
			return nil, err
		}
	}

	rep.Duration = time.Since(start)
	return rep, nil
}

// segFile is a segment file found in a stream directory.
type segFile struct {
	name string
	base uint64
}

// streamRecovery carries the state of one stream's recovery.
type streamRecovery struct {
	s   *Spool
	st  *stream
	rep *RecoveryReport

	segs   []*segment
	gaps   []LossRange
	expect uint64 // next sequence number expected; 0 before the first
	floor  uint64 // least safe next sequence number

	quarantined bool // a segment was quarantined since the last kept one

	wall0 time.Time
	mono0 time.Duration
}

// recoverStream rebuilds one stream from its directory.
func (s *Spool) recoverStream(name string, rep *RecoveryReport) error {
	dir := filepath.Join(s.opts.Dir, name)
	r := &streamRecovery{
		s: s, st: newStream(name, dir), rep: rep, floor: 1,
		wall0: s.opts.Now(), mono0: s.mono(),
	}

	files, err := r.listFiles()
	if err != nil {
		return err
	}
	for i, f := range files {
		r.scanSegment(f, i == len(files)-1)
	}

	r.settleCursor()
	r.install()
	return nil
}

// listFiles returns the segment files in base order and removes leftovers.
func (r *streamRecovery) listFiles() ([]segFile, error) {
	entries, err := os.ReadDir(r.st.dir)
	if err != nil {
		return nil, fmt.Errorf("recover stream %s: %w", r.st.name, err)
	}

	var files []segFile
	for _, e := range entries {
		if e.Name() == cursorTemp {
			os.Remove(filepath.Join(r.st.dir, cursorTemp))
			r.event(e.Name(), EventRemovedTemp, 0, 0, "")
			continue
		}
		if base, ok := parseSegmentName(e.Name()); ok {
			files = append(files, segFile{name: e.Name(), base: base})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].base < files[j].base })
	return files, nil
}

// event adds a recovery event for this stream.
func (r *streamRecovery) event(file string, kind EventKind, off, n int64, detail string) {
	r.rep.Events = append(r.rep.Events, RecoveryEvent{
		Stream: r.st.name, File: file, Kind: kind, Offset: off, Bytes: n, Detail: detail,
	})
}

// gap records that sequence numbers first..last are lost.
func (r *streamRecovery) gap(first, last uint64, reason DropReason) {
	if first <= last {
		r.gaps = append(r.gaps, LossRange{First: first, Last: last, Reason: reason})
	}
}

// scanSegment checks one segment file and keeps, truncates, removes or
// quarantines it.
func (r *streamRecovery) scanSegment(sf segFile, last bool) {
	path := filepath.Join(r.st.dir, sf.name)
	r.floor = max(r.floor, sf.base)

	f, size, err := openSegment(path)
	if err != nil {
		r.quarantine(sf, err)
		return
	}
	if size == 0 && !last {
		f.Close()
		os.Remove(path)
		r.event(sf.name, EventRemovedEmpty, 0, 0, "")
		return
	}

	r.gapBefore(sf.base)
	seg, err := r.readRecords(f, sf, size)
	if err != nil {
		f.Close()
		r.quarantine(sf, err)
		return
	}
	r.keep(f, seg, last)
}

// openSegment opens a segment for reading and repair; it must be a
// regular file.
func openSegment(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}

	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// gapBefore records the numbers missing between the previous kept
// segment and a segment starting at base.
func (r *streamRecovery) gapBefore(base uint64) {
	if r.expect == 0 {
		r.expect = base
		return
	}

	reason := DropMissing
	if r.quarantined {
		reason = DropQuarantined
	}
	if base > r.expect {
		r.gap(r.expect, base-1, reason)
		r.expect = base
	}
}

// readRecords scans a segment, records its gaps and damage and truncates
// whatever follows its last valid record.
func (r *streamRecovery) readRecords(f *os.File, sf segFile, size int64) (*segment, error) {
	seg := &segment{base: sf.base}
	sc := newScanner(f, 0, size, r.expect)
	expect := r.expect
	var gaps []LossRange

	for {
		fr, ok := sc.next()
		if !ok {
			break
		}
		if fr.seq > expect {
			gaps = append(gaps, LossRange{First: expect, Last: fr.seq - 1, Reason: DropCorrupt})
		}
		expect = fr.seq + 1
		r.addFrame(seg, fr)
	}
	if sc.err != nil {
		return nil, fmt.Errorf("read: %w", sc.err)
	}
	if seg.count == 0 && size > 0 {
		return nil, errors.New("no valid record")
	}

	r.gaps = append(r.gaps, gaps...)
	r.expect = expect
	r.damage(f, sf, seg, sc.skips)
	return seg, nil
}

// addFrame accounts one valid record to seg.
func (r *streamRecovery) addFrame(seg *segment, fr frame) {
	if seg.count == 0 {
		seg.first, seg.firstWall = fr.seq, fr.time
	}
	seg.last, seg.lastWall = fr.seq, fr.time
	seg.count++
	seg.size = fr.end()
	r.floor = max(r.floor, fr.seq+1)
}

// damage reports skipped ranges and cuts off a damaged tail. A record at
// the tail with an intact header but bad data is counted as corrupt: it
// may have been acknowledged. A torn record is not: it never was.
func (r *streamRecovery) damage(f *os.File, sf segFile, seg *segment, skips []skip) {
	var tail int64
	for _, sk := range skips {
		if sk.off < seg.size {
			r.event(sf.name, EventSkipped, sk.off, sk.n, "")
			continue
		}
		tail += sk.n
		if sk.hasSeq {
			r.gap(r.expect, sk.badSeq, DropCorrupt)
			r.expect = max(r.expect, sk.badSeq+1)
			r.floor = max(r.floor, sk.badSeq+1)
		}
	}
	if tail == 0 {
		return
	}

	r.event(sf.name, EventTruncated, seg.size, tail, "")
	if err := f.Truncate(seg.size); err != nil {
		seg.broken = true
		return
	}
	if err := r.s.fsync(f); err != nil {
		seg.broken = true
	}
}

// keep adds a scanned segment to the stream.
func (r *streamRecovery) keep(f *os.File, seg *segment, last bool) {
	seg.durable = seg.size
	seg.firstMono = r.monoOf(seg.firstWall)
	seg.lastMono = r.monoOf(seg.lastWall)
	r.quarantined = false

	if last && !seg.broken {
		seg.f = f
	} else {
		f.Close()
		seg.sealed = true
	}
	r.segs = append(r.segs, seg)
}

// monoOf converts a wall time read from disk into the monotonic clock:
// its age at Open by the wall clock, never negative, so a record from the
// future counts as new and ages from now on.
func (r *streamRecovery) monoOf(w time.Time) time.Duration {
	return r.mono0 - max(0, r.wall0.Sub(w))
}

// quarantine moves an unreadable segment aside.
func (r *streamRecovery) quarantine(sf segFile, cause error) {
	qdir := filepath.Join(r.st.dir, quarantineDir)
	dst := filepath.Join(qdir, fmt.Sprintf("%s.%d", sf.name, time.Now().UnixNano()))

	err := os.MkdirAll(qdir, 0o750)
	if err == nil {
		err = os.Rename(filepath.Join(r.st.dir, sf.name), dst)
	}
	detail := cause.Error()
	if err != nil {
		detail += "; move aside: " + err.Error()
	}
	r.event(sf.name, EventQuarantined, 0, 0, detail)
	r.quarantined = true
	r.s.syncDir(r.st.dir)
}

// settleCursor reads the cursor, repairs it against the data and decides
// the next sequence number.
func (r *streamRecovery) settleCursor() {
	if r.quarantined && r.expect != 0 {
		// A trailing quarantined segment: its numbers are unknown, so the
		// next number must stay above its base.
		r.gap(r.expect, r.floor-1, DropQuarantined)
	}

	c, found, err := readCursor(r.st.dir)
	r.st.durableCursor = c
	first := r.firstSeq()
	switch {
	case err != nil:
		r.event(cursorFile, EventCursorReset, 0, 0, err.Error())
		c, r.st.durableCursor = first, 0
	case !found:
		c = first
	case c > r.floor:
		r.event(cursorFile, EventCursorAhead, 0, 0,
			fmt.Sprintf("cursor %d past last durable record %d", c, r.floor-1))
		r.floor = c
	case c < first:
		r.gap(c, first-1, DropMissing)
		c = first
	}

	r.st.cursor = max(c, 1)
	r.st.nextSeq = r.floor
}

// firstSeq returns the first sequence number on disk, or floor if none.
func (r *streamRecovery) firstSeq() uint64 {
	if len(r.segs) == 0 {
		return r.floor
	}
	return r.segs[0].base
}

// install records losses, persists the cursor and registers the stream.
func (r *streamRecovery) install() {
	s, st := r.s, r.st
	s.mu.Lock()
	defer s.mu.Unlock()

	st.segs = r.segs
	for _, seg := range st.segs {
		s.totalBytes += seg.size
		r.rep.Bytes += seg.size
	}
	if len(st.segs) > 0 {
		st.headWall = st.segs[0].firstWall
	}
	s.moveCursorLocked(st, st.cursor)

	r.recordLosses()
	if st.durableCursor != st.cursor && s.persistCursor(st, st.cursor) != nil {
		s.metaErrors.Add(1)
	}

	s.addStreamLocked(st)
	r.rep.Streams++
	r.rep.Segments += len(st.segs)
	r.rep.Records += st.snapshot(s.mono()).BacklogRecords
}

// recordLosses clips the gaps to the cursor, counts them and appends them
// to the loss log.
// Ranges already in the loss log (from a drop interrupted by a crash, or
// an earlier recovery) are not logged or counted again.
func (r *streamRecovery) recordLosses() {
	if len(r.gaps) == 0 {
		return
	}
	logged, err := readLosses(r.st.dir)
	if err != nil {
		r.s.metaErrors.Add(1)
	}

	now := r.s.opts.Now()
	for _, g := range r.gaps {
		g.First = max(g.First, r.st.cursor)
		if g.First > g.Last {
			continue
		}
		for _, part := range subtractLogged(g, logged) {
			part.Time = now
			r.recordLoss(part)
		}
	}
}

// recordLoss counts one new loss and appends it to the loss log.
func (r *streamRecovery) recordLoss(g LossRange) {

	r.st.counters.addDropped(g.Reason, g.Last-g.First+1)
	r.rep.Losses = append(r.rep.Losses, StreamLoss{Stream: r.st.name, LossRange: g})
	if err := r.s.appendLoss(r.st.dir, g); err != nil {
		r.s.metaErrors.Add(1)
	}
}

// subtractLogged returns the parts of g that no logged range covers.
func subtractLogged(g LossRange, logged []LossRange) []LossRange {
	parts := []LossRange{g}
	for _, l := range logged {
		var next []LossRange
		for _, p := range parts {
			next = append(next, cutRange(p, l.First, l.Last)...)
		}
		parts = next
	}
	return parts
}

// cutRange removes lo..hi from p, leaving zero, one or two ranges.
func cutRange(p LossRange, lo, hi uint64) []LossRange {
	if p.First > p.Last {
		return nil
	}
	if hi < p.First || lo > p.Last {
		return []LossRange{p}
	}

	var out []LossRange
	if lo > p.First {
		left := p
		left.Last = lo - 1
		out = append(out, left)
	}
	if hi < p.Last {
		right := p
		right.First = hi + 1
		out = append(out, right)
	}
	return out
}
