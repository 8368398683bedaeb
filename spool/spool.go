package spool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// WhenFull says what Append does when a byte cap or the disk is reached.
type WhenFull string

const (
	// DropOldest deletes the oldest whole segments (counted and logged as
	// losses with reason DropFull) until the new records fit. It is the
	// default.
	DropOldest WhenFull = "drop_oldest"
	// Reject refuses the new records with ErrFull and keeps the old ones.
	Reject WhenFull = "reject"
)

// Defaults for zero Options fields.
const (
	DefaultMaxBytes       = 1 << 30
	DefaultSegmentBytes   = 8 << 20
	DefaultMaxRecordBytes = 1 << 20
	DefaultMaxStreams     = 256
)

// Options configures a Spool. Zero fields take the defaults above.
type Options struct {
	// Dir holds one directory per stream. Required. It is locked while
	// the spool is open; a second Open of the same Dir fails.
	Dir string

	// MaxBytes caps the segment bytes of all streams together.
	MaxBytes int64
	// MaxStreamBytes caps each stream; zero means MaxBytes.
	MaxStreamBytes int64
	// MaxAge drops records older than this (whole segments at a time, see
	// doc.go for how age is measured); zero keeps records until a cap.
	MaxAge time.Duration
	// WhenFull picks Reject or DropOldest (the default).
	WhenFull WhenFull

	// SegmentBytes is the size at which a segment is closed and the next
	// one started. It is lowered to MaxStreamBytes/4 so that dropping a
	// segment always frees a useful share of a stream.
	SegmentBytes int64
	// MaxRecordBytes bounds one record; at most 64 MiB.
	MaxRecordBytes int
	// MaxStreams bounds the number of streams (and so of metric labels).
	MaxStreams int

	// Now is the wall clock stamped on records; nil means time.Now.
	Now func() time.Time
	// Monotonic returns time elapsed on a clock that never jumps; it drives
	// age limits while the process runs. Nil means the runtime's monotonic
	// clock. Tests set both to fake clocks.
	Monotonic func() time.Duration

	// fsyncHook, set only by this package's tests, runs after every fsync.
	fsyncHook func()
}

// Spool is a durable, segmented, per-stream record log. Its methods are
// safe for concurrent use. A Spool must be closed; records acknowledged by
// Append stay durable whatever happens afterwards.
type Spool struct {
	opts Options
	lock *os.File // flock on Dir

	mu         sync.Mutex
	streams    map[string]*stream
	totalBytes int64
	closed     bool
	notify     chan struct{} // closed and replaced when records become durable

	done  chan struct{} // closed by Close
	wg    sync.WaitGroup
	stats fsyncStats

	// metaErrors counts failed writes of cursor or loss log files during
	// drops; the drop itself still happens.
	metaErrors atomic.Uint64

	// fsyncHook, when set by tests, runs after every fsync.
	fsyncHook func()
}

// stream is the in-memory state of one stream; fields are guarded by
// Spool.mu unless noted.
type stream struct {
	name string
	dir  string
	segs []*segment // by base; the last one is the active segment

	nextSeq uint64
	cursor  uint64 // first sequence number not acknowledged or dropped

	// The head is the first record at or after cursor; it lies in segs[0].
	headOff  int64     // offset of the head in segs[0]
	headRecs int64     // records of segs[0] before headOff
	headWall time.Time // append time of the head record, if any

	pending []*commit     // written, waiting for the syncer
	kick    chan struct{} // wakes the syncer

	cursorMu      sync.Mutex // serialises cursor file writes
	durableCursor uint64     // value in the cursor file; guarded by cursorMu

	counters streamCounters
}

// segment is one file of a stream.
type segment struct {
	base    uint64
	first   uint64 // first and last sequence number held, if count > 0
	last    uint64
	count   int64
	size    int64 // bytes of whole records; writes go here
	durable int64 // bytes known to be fsynced; readers stop here

	firstWall, lastWall time.Time
	firstMono, lastMono time.Duration // monotonic equivalents, see doc.go

	f             *os.File // write handle of the active segment
	sealed        bool     // no more writes
	broken        bool     // a write or fsync failed; roll before writing
	inSync        bool     // the syncer is fsyncing f
	closeWhenIdle bool     // close f when the syncer is done
}

// commit is one Append waiting for its fsync.
type commit struct {
	seg  *segment
	end  int64
	err  error
	done chan struct{}
}

// Open opens or creates the spool in opts.Dir, recovers every stream and
// reports what recovery did. Damage is repaired or moved aside rather than
// returned as an error; Open fails only when the directory itself cannot
// be used or is locked by another process.
func Open(opts Options) (*Spool, *RecoveryReport, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, nil, err
	}

	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("open spool: %w", err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, nil, err
	}

	s := &Spool{
		opts:    opts,
		lock:    lock,
		streams: make(map[string]*stream),
		notify:  make(chan struct{}),
		done:    make(chan struct{}),

		fsyncHook: opts.fsyncHook,
	}
	rep, err := s.recoverAll()
	if err != nil {
		s.closeFiles()
		return nil, nil, err
	}

	s.startBackground()
	return s, rep, nil
}

// withDefaults fills zero fields and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("open spool: no directory")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxStreamBytes <= 0 || o.MaxStreamBytes > o.MaxBytes {
		o.MaxStreamBytes = o.MaxBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	o.SegmentBytes = max(min(o.SegmentBytes, o.MaxStreamBytes/4), 4096)

	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.MaxRecordBytes > maxFrameData {
		return o, fmt.Errorf("open spool: max record bytes %d above %d", o.MaxRecordBytes, maxFrameData)
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}

	return o.withClocks()
}

// withClocks fills the clocks and checks WhenFull.
func (o Options) withClocks() (Options, error) {
	switch o.WhenFull {
	case "":
		o.WhenFull = DropOldest
	case DropOldest, Reject:
	default:
		return o, fmt.Errorf("open spool: when_full %q: want reject or drop_oldest", o.WhenFull)
	}

	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Monotonic == nil {
		start := time.Now()
		o.Monotonic = func() time.Duration { return time.Since(start) }
	}
	return o, nil
}

// lockDir takes an exclusive flock on dir/LOCK so that two processes never
// share a spool directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock spool dir: %w", err)
	}

	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock spool dir %s: in use by another process: %w", dir, err)
	}
	return f, nil
}

// mono returns the monotonic clock.
func (s *Spool) mono() time.Duration {
	return s.opts.Monotonic()
}

// Close waits for pending fsyncs, stops the background work and closes all
// files. Appends after Close fail with ErrClosed. Close is idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()

	s.wg.Wait()
	return s.closeFiles()
}

// closeFiles closes segment handles and releases the directory lock.
func (s *Spool) closeFiles() error {
	s.mu.Lock()
	defer s.mu.Unlock()

	var errs []error
	for _, st := range s.streams {
		for _, seg := range st.segs {
			if seg.f != nil {
				errs = append(errs, seg.f.Close())
				seg.f = nil
			}
		}
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}

// startBackground starts the age expiry loop when MaxAge is set.
func (s *Spool) startBackground() {
	if s.opts.MaxAge <= 0 {
		return
	}
	every := min(max(s.opts.MaxAge/32, time.Second), time.Minute)

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.expire()
			}
		}
	}()
}

// signalDurable wakes readers; the caller holds s.mu.
func (s *Spool) signalDurable() {
	close(s.notify)
	s.notify = make(chan struct{})
}

// DeadLetterSuffix ends the name of a stream's dead-letter stream. Such
// streams are reserved: producers cannot append to them through the HTTP
// API, and they do not count against MaxStreams (each has its own stream,
// so there are at most MaxStreams of them too), so a forwarder can always
// set a poison record aside.
const DeadLetterSuffix = ".dead"

// IsDeadLetter tells whether a stream name is a dead-letter stream's.
func IsDeadLetter(name string) bool {
	return strings.HasSuffix(name, DeadLetterSuffix)
}

// roomForStreamLocked tells whether a stream called name may be created:
// ordinary streams up to MaxStreams, dead-letter streams up to MaxStreams
// of their own. The caller holds s.mu.
func (s *Spool) roomForStreamLocked(name string) bool {
	dead := 0
	for n := range s.streams {
		if IsDeadLetter(n) {
			dead++
		}
	}
	if IsDeadLetter(name) {
		return dead < s.opts.MaxStreams
	}
	return len(s.streams)-dead < s.opts.MaxStreams
}

// streamLocked returns the stream, creating its directory on first use.
func (s *Spool) streamLocked(name string) (*stream, error) {
	if st := s.streams[name]; st != nil {
		return st, nil
	}
	if !s.roomForStreamLocked(name) {
		return nil, fmt.Errorf("create stream %s: %w (limit %d)", name, ErrTooManyStreams, s.opts.MaxStreams)
	}

	dir := filepath.Join(s.opts.Dir, name)
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create stream %s: %w", name, err)
	}
	if err := s.syncDir(s.opts.Dir); err != nil {
		return nil, fmt.Errorf("create stream %s: %w", name, err)
	}

	// The cursor file exists from the start, so that on a full disk it
	// can still be overwritten in place.
	st := newStream(name, dir)
	st.nextSeq, st.cursor = 1, 1
	if err := s.persistCursor(st, 1); err != nil {
		return nil, wrapNoSpace(fmt.Errorf("create stream %s: %w", name, err))
	}
	s.addStreamLocked(st)
	return st, nil
}

// newStream returns an empty stream.
func newStream(name, dir string) *stream {
	return &stream{name: name, dir: dir, kick: make(chan struct{}, 1)}
}

// addStreamLocked registers st and starts its syncer.
func (s *Spool) addStreamLocked(st *stream) {
	s.streams[st.name] = st

	s.wg.Add(1)
	go s.syncLoop(st)
}

// active returns the segment appends go to, or nil.
func (st *stream) active() *segment {
	if len(st.segs) == 0 {
		return nil
	}
	return st.segs[len(st.segs)-1]
}

// headMono returns the monotonic equivalent of the head record's append
// time: its wall time placed inside the segment's monotonic span, so that
// a clock jump between records cannot move it out of that span.
func (st *stream) headMono() time.Duration {
	seg := st.segs[0]
	m := seg.firstMono + st.headWall.Sub(seg.firstWall)
	return min(max(m, seg.firstMono), seg.lastMono)
}

// isNoSpace reports whether err means the file system is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Append stores records at the end of stream, creating the stream on first
// use, and returns the sequence numbers given to the first and the last.
// It returns only after the records are fsynced; concurrent appends share
// fsyncs. ctx is checked before writing; once written, Append waits for the
// fsync. On error no record of the call was acknowledged (some may still
// be delivered later: at least once).
func (s *Spool) Append(ctx context.Context, stream string, records ...[]byte) (first, last uint64, err error) {
	if err := s.checkAppend(stream, records); err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("append to %s: %w", stream, err)
	}

	s.mu.Lock()
	st, c, first, last, err := s.appendLocked(stream, records)
	s.mu.Unlock()
	if err != nil {
		return 0, 0, err
	}

	select {
	case st.kick <- struct{}{}:
	default:
	}
	<-c.done
	if c.err != nil {
		return 0, 0, fmt.Errorf("append to %s: %w", stream, c.err)
	}

	st.counters.appended.Add(uint64(len(records)))
	return first, last, nil
}

// checkAppend validates the name and the record sizes.
func (s *Spool) checkAppend(stream string, records [][]byte) error {
	if err := checkStreamName(stream); err != nil {
		return err
	}
	if len(records) == 0 {
		return fmt.Errorf("append to %s: no records", stream)
	}

	for i, r := range records {
		if len(r) == 0 {
			return fmt.Errorf("append to %s: record %d: %w", stream, i, ErrEmptyRecord)
		}
		if len(r) > s.opts.MaxRecordBytes {
			return fmt.Errorf("append to %s: record %d has %d bytes, limit %d: %w",
				stream, i, len(r), s.opts.MaxRecordBytes, ErrRecordTooLarge)
		}
	}
	return nil
}

// appendLocked makes room, writes the frames and queues the commit.
func (s *Spool) appendLocked(name string, records [][]byte) (*stream, *commit, uint64, uint64, error) {
	if s.closed {
		return nil, nil, 0, 0, fmt.Errorf("append to %s: %w", name, ErrClosed)
	}
	st, err := s.streamLocked(name)
	if err != nil {
		return nil, nil, 0, 0, err
	}

	// Sequence numbers never wrap: a stream whose numbers ran out (only a
	// hand-made file can take it there) refuses appends.
	if st.nextSeq == 0 || st.nextSeq > math.MaxUint64-uint64(len(records)) {
		return nil, nil, 0, 0, fmt.Errorf("append to %s: %w: sequence numbers exhausted at %d", name, ErrFull, st.nextSeq)
	}
	var need int64
	for _, r := range records {
		need += frameSize(len(r))
	}
	if err := s.reserveLocked(st, need); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("append to %s: %w", name, err)
	}

	first := st.nextSeq
	seg, err := s.writeLocked(st, records, need)
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("append to %s: %w", name, err)
	}

	c := &commit{seg: seg, end: seg.size, done: make(chan struct{})}
	st.pending = append(st.pending, c)
	return st, c, first, st.nextSeq - 1, nil
}

// reserveLocked checks the byte caps for need more bytes in st and, under
// DropOldest, drops oldest segments until they fit.
func (s *Spool) reserveLocked(st *stream, need int64) error {
	if need > s.opts.MaxStreamBytes {
		return fmt.Errorf("%w: batch of %d bytes exceeds the stream cap", ErrFull, need)
	}

	for range 1 << 16 {
		streamOver := st.diskBytes()+need > s.opts.MaxStreamBytes
		totalOver := s.totalBytes+need > s.opts.MaxBytes
		if !streamOver && !totalOver {
			return nil
		}
		if s.opts.WhenFull == Reject {
			return fmt.Errorf("%w: cap reached", ErrFull)
		}

		victim := st
		if !streamOver {
			victim = s.oldestStreamLocked(st)
		}
		if !s.dropOldestSegmentLocked(victim) {
			return fmt.Errorf("%w: nothing left to drop", ErrFull)
		}
	}
	return fmt.Errorf("%w: cap still reached", ErrFull)
}

// diskBytes returns the segment bytes of st.
func (st *stream) diskBytes() int64 {
	var n int64
	for _, seg := range st.segs {
		n += seg.size
	}
	return n
}

// oldestStreamLocked returns the stream whose oldest droppable segment is
// the oldest of all, or self when no other stream has one.
func (s *Spool) oldestStreamLocked(self *stream) *stream {
	best := self
	var bestMono time.Duration
	found := false

	for _, st := range s.streams {
		if len(st.segs) < 2 && st != self {
			continue
		}
		if len(st.segs) == 0 || st.segs[0].count == 0 {
			continue
		}
		m := st.segs[0].firstMono
		if !found || m < bestMono {
			best, bestMono, found = st, m, true
		}
	}
	return best
}

// dropOldestSegmentLocked drops the oldest segment of st, rolling the
// active one first when it is the only one. It reports whether anything
// was freed.
func (s *Spool) dropOldestSegmentLocked(st *stream) bool {
	if len(st.segs) == 0 || st.segs[0].size == 0 && len(st.segs) == 1 {
		return false
	}
	if len(st.segs) == 1 {
		if err := s.rollLocked(st); err != nil {
			return false
		}
	}

	before := s.totalBytes
	victim := st.segs[0]
	s.dropUpToLocked(st, victim.last+1, DropFull)
	if s.totalBytes >= before {
		// The segment could not be removed; force progress anyway.
		return s.removeSegmentLocked(st, victim) == nil
	}
	return true
}

// writeLocked frames records and writes them to the active segment,
// rolling it when needed. On ENOSPC under DropOldest it drops the oldest
// segment and retries. No sequence number is used by a failed write.
func (s *Spool) writeLocked(st *stream, records [][]byte, need int64) (*segment, error) {
	now := s.opts.Now()
	mono := s.mono()
	buf := make([]byte, 0, need)
	for i, r := range records {
		buf = appendFrame(buf, st.nextSeq+uint64(i), now, r)
	}

	for range 64 {
		seg, err := s.activeLocked(st, need, mono)
		if err != nil {
			return nil, err
		}
		err = s.writeAt(seg, buf)
		if err == nil {
			s.noteWritten(st, seg, len(records), need, now, mono)
			return seg, nil
		}

		if !isNoSpace(err) || s.opts.WhenFull == Reject {
			return nil, wrapNoSpace(err)
		}
		if !s.dropOldestSegmentLocked(s.oldestStreamLocked(st)) {
			return nil, wrapNoSpace(err)
		}
	}
	return nil, fmt.Errorf("%w: disk still full", ErrFull)
}

// wrapNoSpace adds ErrFull to a disk-full error.
func wrapNoSpace(err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// writeAt writes buf at the end of seg; a partial write is cut off again
// so that the file never keeps a torn record in the middle.
func (s *Spool) writeAt(seg *segment, buf []byte) error {
	_, err := seg.f.WriteAt(buf, seg.size)
	if err == nil {
		return nil
	}

	if terr := seg.f.Truncate(seg.size); terr != nil {
		seg.broken = true
	}
	return fmt.Errorf("write segment %d: %w", seg.base, err)
}

// noteWritten updates the bookkeeping after a successful write.
func (s *Spool) noteWritten(st *stream, seg *segment, n int, need int64, now time.Time, mono time.Duration) {
	if seg.count == 0 {
		seg.first = st.nextSeq
		seg.firstWall, seg.firstMono = now, mono
	}
	if st.cursor == st.nextSeq {
		// The stream had no backlog: the new record becomes the head.
		st.headWall = now
	}

	st.nextSeq += uint64(n)
	seg.last = st.nextSeq - 1
	seg.count += int64(n)
	seg.lastWall, seg.lastMono = now, mono
	seg.size += need
	s.totalBytes += need
}

// activeLocked returns the segment to write need bytes into, rolling to a
// new one when the current one is full, old, sealed or broken.
func (s *Spool) activeLocked(st *stream, need int64, mono time.Duration) (*segment, error) {
	seg := st.active()
	if seg != nil && !s.needsRoll(seg, need, mono) {
		return seg, nil
	}
	if err := s.rollLocked(st); err != nil {
		return nil, err
	}
	return st.active(), nil
}

// needsRoll reports whether seg must be closed before need more bytes.
func (s *Spool) needsRoll(seg *segment, need int64, mono time.Duration) bool {
	if seg.sealed || seg.broken || seg.f == nil {
		return true
	}
	if seg.size > 0 && seg.size+need > s.opts.SegmentBytes {
		return true
	}
	// Segments also roll by time so that age expiry, which works on
	// whole segments, stays within 1/16 of MaxAge.
	maxAge := s.opts.MaxAge
	return maxAge > 0 && seg.count > 0 && mono-seg.firstMono > maxAge/16
}

// rollLocked seals the active segment (fsync, resolve its pending
// commits) and creates the next one, durable in the directory.
func (s *Spool) rollLocked(st *stream) error {
	if old := st.active(); old != nil && !old.sealed {
		s.sealLocked(st, old)
	}
	if old := st.active(); old != nil && old.count == 0 {
		// An empty sealed segment would collide with the new name.
		if err := s.removeSegmentLocked(st, old); err != nil {
			return err
		}
	}

	seg, err := s.createSegment(st)
	if err != nil {
		return err
	}
	st.segs = append(st.segs, seg)
	if len(st.segs) == 1 {
		st.headOff, st.headRecs = 0, 0
	}
	s.gcLocked(st)
	return nil
}

// sealLocked fsyncs and seals seg, answering the commits waiting on it.
func (s *Spool) sealLocked(st *stream, seg *segment) {
	err := s.fsync(seg.f)
	if err == nil {
		seg.durable = seg.size
	} else {
		seg.broken = true
	}
	s.resolveLocked(st, err)

	seg.sealed = true
	if seg.inSync {
		seg.closeWhenIdle = true
	} else {
		seg.f.Close()
		seg.f = nil
	}
	s.signalDurable()
}

// resolveLocked answers every pending commit of st with err.
func (s *Spool) resolveLocked(st *stream, err error) {
	for _, c := range st.pending {
		c.err = err
		close(c.done)
	}
	st.pending = nil
}

// createSegment creates the file of a new segment starting at nextSeq and
// makes its directory entry durable.
func (s *Spool) createSegment(st *stream) (*segment, error) {
	path := filepath.Join(st.dir, segmentName(st.nextSeq))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, wrapNoSpace(fmt.Errorf("create segment: %w", err))
	}
	if err := s.syncDir(st.dir); err != nil {
		f.Close()
		os.Remove(path)
		return nil, wrapNoSpace(fmt.Errorf("create segment: %w", err))
	}
	return &segment{base: st.nextSeq, f: f}, nil
}

// syncLoop is the group-commit goroutine of one stream: each round takes
// every commit written so far and fsyncs them together.
func (s *Spool) syncLoop(st *stream) {
	defer s.wg.Done()
	for {
		select {
		case <-st.kick:
			s.syncPending(st)
		case <-s.done:
			s.syncPending(st)
			return
		}
	}
}

// syncPending fsyncs until no commit is pending.
func (s *Spool) syncPending(st *stream) {
	for {
		s.mu.Lock()
		batch := st.pending
		st.pending = nil
		if len(batch) == 0 {
			s.mu.Unlock()
			return
		}
		seg := batch[len(batch)-1].seg
		seg.inSync = true
		f := seg.f
		s.mu.Unlock()

		err := s.fsync(f)
		s.finishSync(seg, batch, err)
	}
}

// finishSync records the outcome of one group fsync and answers its
// commits.
func (s *Spool) finishSync(seg *segment, batch []*commit, err error) {
	s.mu.Lock()
	seg.inSync = false
	if err == nil {
		seg.durable = max(seg.durable, batch[len(batch)-1].end)
	} else {
		seg.broken = true
	}
	if seg.closeWhenIdle && seg.f != nil {
		seg.f.Close()
		seg.f = nil
	}
	s.signalDurable()
	s.mu.Unlock()

	for _, c := range batch {
		c.err = err
		close(c.done)
	}
}
