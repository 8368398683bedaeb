package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Record is one record read from the spool.
type Record struct {
	Stream string
	Seq    uint64
	Time   time.Time // wall clock at append
	Data   []byte
}

// Reader hands out durable records for forwarding, stream by stream, in
// sequence order, at least once. Records stay in the spool until Ack (or
// Discard) moves the stream's durable cursor past them. A Reader is meant
// for one goroutine, the forwarder; it must be closed. Several readers
// would each see every record.
type Reader struct {
	s      *Spool
	pos    map[string]*readPos
	turn   int // round-robin start among streams
	closed bool
}

// readPos is where a reader stands in one stream.
type readPos struct {
	seq  uint64 // next sequence number to hand out
	base uint64 // segment holding it
	off  int64
	f    *os.File // open handle of that segment, or nil
}

// NewReader returns a reader positioned at every stream's cursor.
func (s *Spool) NewReader() *Reader {
	return &Reader{s: s, pos: make(map[string]*readPos)}
}

// Close releases the reader's files.
func (r *Reader) Close() error {
	r.Rewind()
	r.closed = true
	return nil
}

// Rewind moves the reader back to every stream's cursor, so that records
// handed out but not acknowledged (say, lost with a broken connection)
// are handed out again.
func (r *Reader) Rewind() {
	for name, p := range r.pos {
		if p.f != nil {
			p.f.Close()
		}
		delete(r.pos, name)
	}
}

// Next returns up to max records of one stream, blocking until at least
// one is durable, ctx is done or the spool is closed (ErrClosed). Streams
// take turns. The records' Data is owned by the caller.
func (r *Reader) Next(ctx context.Context, max int) ([]Record, error) {
	if max <= 0 {
		max = 1
	}
	for {
		if r.closed {
			return nil, fmt.Errorf("next: %w", ErrClosed)
		}
		r.s.mu.Lock()
		wake, closed := r.s.notify, r.s.closed
		names := r.s.streamNamesLocked()
		r.s.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("next: %w", ErrClosed)
		}

		if recs, err := r.poll(names, max); len(recs) > 0 || err != nil {
			return recs, err
		}

		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		case <-r.s.done:
		}
	}
}

// streamNamesLocked returns the stream names in order.
func (s *Spool) streamNamesLocked() []string {
	names := make([]string, 0, len(s.streams))
	for n := range s.streams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// poll reads from the first stream, in turn, that has durable records.
func (r *Reader) poll(names []string, max int) ([]Record, error) {
	for i := range names {
		k := (r.turn + i) % len(names)
		recs, err := r.readStream(names[k], max)
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			r.turn = k + 1
			return recs, nil
		}
	}
	return nil, nil
}

// readStream reads up to max durable records of one stream, moving to the
// next segment when one is exhausted.
func (r *Reader) readStream(name string, max int) ([]Record, error) {
	for range 1 << 20 {
		path, limit, more, ok := r.locate(name)
		if !ok {
			return nil, nil
		}
		p := r.pos[name]
		if p.off >= limit {
			if !more {
				return nil, nil
			}
			r.advance(name)
			continue
		}
		return r.readSegment(name, p, path, limit, max)
	}
	return nil, nil
}

// locate returns the segment file the reader stands in and how far it may
// read. It resets the position to the cursor when the reader fell behind
// it (records acknowledged elsewhere or dropped). more says whether a
// later segment exists.
func (r *Reader) locate(name string) (path string, limit int64, more, ok bool) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()

	st := s.streams[name]
	if st == nil || len(st.segs) == 0 {
		return "", 0, false, false
	}
	p := r.pos[name]
	if p == nil || p.seq < st.cursor || st.indexOf(p.base) < 0 {
		p = r.reset(name, st)
	}

	i := st.indexOf(p.base)
	seg := st.segs[i]
	return filepath.Join(st.dir, segmentName(seg.base)), seg.durable, i+1 < len(st.segs), true
}

// indexOf returns the index of the segment starting at base, or -1.
func (st *stream) indexOf(base uint64) int {
	for i, seg := range st.segs {
		if seg.base == base {
			return i
		}
	}
	return -1
}

// reset puts the reader of one stream at its head; the caller holds s.mu.
func (r *Reader) reset(name string, st *stream) *readPos {
	if old := r.pos[name]; old != nil && old.f != nil {
		old.f.Close()
	}
	p := &readPos{seq: st.cursor, base: st.segs[0].base, off: st.headOff}
	r.pos[name] = p
	return p
}

// advance moves the reader of one stream to the start of the next segment.
func (r *Reader) advance(name string) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()

	st, p := s.streams[name], r.pos[name]
	i := st.indexOf(p.base)
	if i < 0 || i+1 >= len(st.segs) {
		return
	}
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
	p.base, p.off = st.segs[i+1].base, 0
}

// readSegment reads records from one segment below limit.
func (r *Reader) readSegment(name string, p *readPos, path string, limit int64, max int) ([]Record, error) {
	if p.f == nil {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		p.f = f
	}

	var out []Record
	sc := newScanner(p.f, p.off, limit, p.seq)
	for len(out) < max {
		fr, ok := sc.next()
		if !ok {
			break
		}
		data := append([]byte(nil), fr.data...)
		out = append(out, Record{Stream: name, Seq: fr.seq, Time: fr.time, Data: data})
	}
	if sc.err != nil {
		return out, fmt.Errorf("read %s: %w", name, sc.err)
	}

	p.off = sc.off
	if len(out) > 0 {
		p.seq = out[len(out)-1].Seq + 1
	}
	return out, nil
}

// Ack tells the spool that the upstream acknowledged every record of
// stream up to and including upto. The cursor is written durably before
// Ack returns and segments entirely behind it are deleted. Acknowledging
// a number never appended fails with ErrAckRange; an old number is a
// no-op.
func (r *Reader) Ack(stream string, upto uint64) error {
	return r.s.ack(stream, upto)
}

// Discard drops the records of stream up to and including upto without
// forwarding them, for example records the upstream refuses for good. They
// are counted and logged under reason (use DropDeadLetter).
func (r *Reader) Discard(stream string, upto uint64, reason DropReason) error {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()

	st := s.streams[stream]
	if st == nil {
		return fmt.Errorf("discard %s: %w", stream, ErrUnknownStream)
	}
	if upto >= st.nextSeq {
		return fmt.Errorf("discard %s up to %d: %w", stream, upto, ErrAckRange)
	}
	s.dropUpToLocked(st, upto+1, reason)
	return nil
}

// Losses returns the loss log of stream, oldest first: every range of
// sequence numbers dropped without being forwarded, with its reason.
func (s *Spool) Losses(stream string) ([]LossRange, error) {
	if err := checkStreamName(stream); err != nil {
		return nil, err
	}
	return readLosses(filepath.Join(s.opts.Dir, stream))
}
