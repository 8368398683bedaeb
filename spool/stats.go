package spool

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// fsyncBuckets are the upper bounds, in seconds, of the fsync histogram.
var fsyncBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
}

// fsyncStats is a histogram of fsync durations, safe for concurrent use.
type fsyncStats struct {
	mu      sync.Mutex
	count   uint64
	sum     float64
	buckets []uint64 // not cumulative; one slot per bound plus +Inf
}

// observeFsync records one fsync that took d.
func (f *fsyncStats) observeFsync(d time.Duration) {
	sec := d.Seconds()
	i := sort.SearchFloat64s(fsyncBuckets, sec)

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buckets == nil {
		f.buckets = make([]uint64, len(fsyncBuckets)+1)
	}
	f.count++
	f.sum += sec
	f.buckets[i]++
}

// snapshot returns the count, the sum and cumulative bucket counts.
func (f *fsyncStats) snapshot() (uint64, float64, map[float64]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()

	cum := make(map[float64]uint64, len(fsyncBuckets))
	var run uint64
	for i, bound := range fsyncBuckets {
		if f.buckets != nil {
			run += f.buckets[i]
		}
		cum[bound] = run
	}
	return f.count, f.sum, cum
}

// streamCounters are the per-stream counters; they start at zero with
// every Open, as Prometheus counters may.
type streamCounters struct {
	appended  atomic.Uint64
	forwarded atomic.Uint64
	dropped   [6]atomic.Uint64 // indexed by reasonIndex
}

// addDropped counts n records dropped for reason r.
func (c *streamCounters) addDropped(r DropReason, n uint64) {
	if i := reasonIndex(r); i >= 0 {
		c.dropped[i].Add(n)
	}
}

// StreamStats is a snapshot of one stream.
type StreamStats struct {
	Stream    string
	Appended  uint64                // records appended since Open
	Forwarded uint64                // records acknowledged since Open
	Dropped   map[DropReason]uint64 // records dropped since Open, by reason

	BacklogBytes   int64         // bytes of records not yet acknowledged
	BacklogRecords int64         // records not yet acknowledged
	OldestAge      time.Duration // age of the oldest such record, 0 if none
	FirstSeq       uint64        // first sequence number not yet acknowledged
	LastSeq        uint64        // last sequence number appended, 0 if none
	DiskBytes      int64         // bytes of segment files, acknowledged or not
	Segments       int
}

// Stats is a snapshot of the whole spool.
type Stats struct {
	Streams   []StreamStats // sorted by name
	DiskBytes int64

	// MetadataErrors counts cursor or loss log writes that failed while
	// dropping records; the drop still happened.
	MetadataErrors uint64

	Fsyncs       uint64
	FsyncSeconds float64
	// FsyncBuckets maps each upper bound in seconds to the cumulative count.
	FsyncBuckets map[float64]uint64
}

// Stats returns a consistent snapshot of all counters and gauges. It does
// no I/O.
func (s *Spool) Stats() Stats {
	var out Stats
	out.MetadataErrors = s.metaErrors.Load()
	out.Fsyncs, out.FsyncSeconds, out.FsyncBuckets = s.stats.snapshot()

	s.mu.Lock()
	defer s.mu.Unlock()

	now := s.mono()
	for _, st := range s.streams {
		out.Streams = append(out.Streams, st.snapshot(now))
	}
	sort.Slice(out.Streams, func(i, j int) bool {
		return out.Streams[i].Stream < out.Streams[j].Stream
	})
	out.DiskBytes = s.totalBytes
	return out
}

// snapshot returns the stats of st; the caller holds the spool lock.
func (st *stream) snapshot(now time.Duration) StreamStats {
	ss := StreamStats{
		Stream:    st.name,
		Appended:  st.counters.appended.Load(),
		Forwarded: st.counters.forwarded.Load(),
		Dropped:   make(map[DropReason]uint64, len(DropReasons)),
		FirstSeq:  st.cursor,
		LastSeq:   st.nextSeq - 1,
		Segments:  len(st.segs),
	}
	for i, r := range DropReasons {
		ss.Dropped[r] = st.counters.dropped[i].Load()
	}

	for _, seg := range st.segs {
		ss.DiskBytes += seg.size
		ss.BacklogBytes += seg.size
		ss.BacklogRecords += seg.count
	}
	ss.BacklogBytes -= st.headOff
	ss.BacklogRecords -= st.headRecs
	if ss.BacklogRecords > 0 {
		ss.OldestAge = max(0, now-st.headMono())
	}
	return ss
}
