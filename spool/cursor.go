package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ack makes upto+1 the durable cursor of stream and releases what lies
// behind it. The cursor file is written before any segment is removed.
func (s *Spool) ack(name string, upto uint64) error {
	s.mu.Lock()
	st := s.streams[name]
	if st == nil {
		s.mu.Unlock()
		return fmt.Errorf("ack %s: %w", name, ErrUnknownStream)
	}
	next, cursor := st.nextSeq, st.cursor
	s.mu.Unlock()

	if upto >= next {
		return fmt.Errorf("ack %s up to %d (last %d): %w", name, upto, next-1, ErrAckRange)
	}
	if upto < cursor {
		return nil
	}
	if err := s.persistCursor(st, upto+1); err != nil {
		return fmt.Errorf("ack %s: %w", name, err)
	}

	s.mu.Lock()
	passed := s.moveCursorLocked(st, upto+1)
	s.mu.Unlock()

	st.counters.forwarded.Add(uint64(passed))
	return nil
}

// persistCursor writes v to the cursor file unless a larger value is
// already there, so concurrent writers never move it backwards.
func (s *Spool) persistCursor(st *stream, v uint64) error {
	st.cursorMu.Lock()
	defer st.cursorMu.Unlock()

	if v <= st.durableCursor {
		return nil
	}
	if err := s.writeCursor(st.dir, v); err != nil {
		return err
	}
	st.durableCursor = v
	return nil
}

// dropUpToLocked drops every record of st below upTo for reason: it moves
// the cursor, removes whole segments (first, to free space on a full
// disk), then appends the loss log entry and writes the cursor. A crash
// in between is seen by recovery as a gap and logged as missing.
func (s *Spool) dropUpToLocked(st *stream, upTo uint64, reason DropReason) {
	from := st.cursor
	if upTo <= from {
		return
	}

	passed := s.moveCursorLocked(st, upTo)
	if passed == 0 {
		return
	}
	st.counters.addDropped(reason, uint64(passed))

	loss := LossRange{First: from, Last: upTo - 1, Reason: reason, Time: s.opts.Now()}
	if err := s.appendLoss(st.dir, loss); err != nil {
		s.metaErrors.Add(1)
	}
	if err := s.persistCursor(st, upTo); err != nil {
		s.metaErrors.Add(1)
	}
}

// moveCursorLocked sets the cursor to c (never backwards), removes sealed
// segments entirely behind it and moves the head onto the first record at
// or after it. It returns how many records the head passed. The last
// segment is never removed, so the next sequence number always survives
// on disk, in it or in the cursor file.
func (s *Spool) moveCursorLocked(st *stream, c uint64) int64 {
	st.cursor = max(st.cursor, c)

	var passed int64
	for len(st.segs) > 0 {
		seg := st.segs[0]
		behind := seg.count == 0 || seg.last < st.cursor
		if behind && len(st.segs) > 1 {
			passed += seg.count - st.headRecs
			s.removeSegmentLocked(st, seg)
			continue
		}

		passed += s.advanceHeadLocked(st, seg)
		return passed
	}
	return passed
}

// gcLocked removes sealed segments behind the cursor.
func (s *Spool) gcLocked(st *stream) {
	s.moveCursorLocked(st, st.cursor)
}

// advanceHeadLocked moves the head within seg (which is segs[0]) to the
// first record at or after the cursor and returns the records passed.
func (s *Spool) advanceHeadLocked(st *stream, seg *segment) int64 {
	if seg.count == 0 || st.cursor > seg.last {
		passed := seg.count - st.headRecs
		st.headOff, st.headRecs = seg.size, seg.count
		return passed
	}

	f, err := os.Open(filepath.Join(st.dir, segmentName(seg.base)))
	if err != nil {
		return 0
	}
	defer f.Close()

	var passed int64
	sc := newScanner(f, st.headOff, seg.size, 0)
	for {
		fr, ok := sc.next()
		if !ok {
			return passed
		}
		if fr.seq >= st.cursor {
			st.headOff, st.headWall = fr.off, fr.time
			return passed
		}
		passed++
		st.headRecs++
		st.headOff = fr.end()
	}
}

// removeSegmentLocked deletes seg's file and forgets it. The segment is
// forgotten even when the removal fails, so that a broken file system
// cannot stall the spool; recovery deals with a leftover file.
func (s *Spool) removeSegmentLocked(st *stream, seg *segment) error {
	idx := -1
	for i, x := range st.segs {
		if x == seg {
			idx = i
		}
	}
	if idx < 0 {
		return nil
	}

	if seg.inSync {
		seg.closeWhenIdle = true
	} else if seg.f != nil {
		seg.f.Close()
		seg.f = nil
	}
	st.segs = append(st.segs[:idx], st.segs[idx+1:]...)
	s.totalBytes -= seg.size
	if idx == 0 {
		st.headOff, st.headRecs = 0, 0
		if len(st.segs) > 0 {
			st.headWall = st.segs[0].firstWall
		}
	}

	err := os.Remove(filepath.Join(st.dir, segmentName(seg.base)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove segment %d of %s: %w", seg.base, st.name, err)
	}
	return s.syncDir(st.dir)
}

// expire drops, in every stream, the leading segments whose newest record
// is older than MaxAge on the monotonic clock.
func (s *Spool) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.opts.MaxAge <= 0 {
		return
	}

	now := s.mono()
	for _, st := range s.streams {
		var upTo uint64
		for _, seg := range st.segs {
			if seg.count == 0 || now-seg.lastMono <= s.opts.MaxAge {
				break
			}
			upTo = seg.last + 1
		}
		s.dropUpToLocked(st, upTo, DropMaxAge)
	}
}
