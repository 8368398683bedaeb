// Package spool is Edgeward's durable store-and-forward buffer for
// telemetry: producers append records to named streams (Go API or the
// HTTP ingest API of NewHandler), a forwarder reads them with a Reader
// and acknowledges what the upstream accepted. An append is answered only
// after its records are fsynced; a record leaves the spool only when it
// was acknowledged, or dropped under a named reason and logged as a loss.
// The package never logs: it returns errors and exposes counters (Stats,
// NewCollector).
//
// # Files
//
//	<dir>/LOCK                       flock: one process per directory
//	<dir>/<stream>/                  one directory per stream
//	    00000000000000000001.seg     segments, named by first sequence number
//	    00000000000000004097.seg     (the last one is the active segment)
//	    cursor                       first sequence number not acknowledged
//	    losses, losses.1             loss log: dropped sequence ranges
//	    quarantine/                  unreadable segments moved aside
//
// Stream names match [a-z0-9][a-z0-9._-]{0,63}: safe as a directory name
// and as a metric label. Options.MaxStreams (default 256) bounds them.
//
// # Record frame
//
// A segment is a sequence of frames, little endian, no file header:
//
//	0      4        8               16              24         28         32
//	+------+--------+---------------+---------------+----------+----------+------+
//	| magic| length |   sequence    | append time   | data CRC | head CRC | data |
//	| ED57 | uint32 |    uint64     | unix ns int64 | CRC32C   | CRC32C   | ...  |
//	| 5201 |        |               |               | of data  | of 0..28 |      |
//	+------+--------+---------------+---------------+----------+----------+------+
//
// The magic's last byte is the format version. The header checksum covers
// the length, so a damaged length is never followed. Payloads are at most
// 64 MiB whatever Options.MaxRecordBytes says.
//
// The cursor file is 16 bytes: magic ED 57 43 01, the sequence number,
// and a CRC32C of both. A loss log entry is 36 bytes: magic ED 57 4C 01,
// reason code, first and last sequence number, time, CRC32C.
//
// # Invariants
//
//   - Sequence numbers of a stream start at 1, increase by one per record
//     and are never given out twice, across restarts and repairs: the next
//     number is above every number found on disk, above the base of every
//     segment file and at least the cursor. A failed write uses none.
//   - Appends write at the end of the active segment and are answered after
//     an fsync that covers them. One goroutine per stream fsyncs for all
//     appends written since its last round (group commit). A new segment is
//     made durable in its directory before records in it are answered.
//   - A write that fails half way is cut back, so no torn frame sits in the
//     middle of a segment written by this process.
//   - Readers see only fsynced bytes.
//   - The cursor is written atomically (temporary file, fsync, rename,
//     fsync of the directory) before the segments it releases are deleted.
//     Only sealed segments are deleted, never the last one.
//   - Memory does not grow with the backlog: per stream a slice of segment
//     descriptors (count bounded by the byte caps over SegmentBytes) and
//     the head position; readers scan segments with a bounded window.
//
// # Caps and losses
//
// MaxStreamBytes and MaxBytes bound segment bytes (acknowledged records
// still in a segment count). Under Reject an append that does not fit, or
// meets ENOSPC, fails with ErrFull and nothing else changes; acknowledging
// records frees room (on a full disk the cursor is overwritten in place,
// see writeCursor). Under DropOldest the oldest whole segment is dropped:
// of the stream for its own cap, of any stream for the total cap or a full
// disk. Every drop moves the cursor past the dropped records, counts them
// under a DropReason and appends their range to the stream's loss log, so a
// receiver can tell loss from silence (Spool.Losses).
//
// # Age
//
// Each record stores the wall clock at append time; that is what Record.Time
// reports. Expiry uses a monotonic clock instead. While the process runs,
// every segment remembers the monotonic time of its first and last record,
// so a wall-clock step in either direction neither expires fresh data nor
// keeps old data. At Open the monotonic time of a recovered record is
// derived from its age by the wall clock, clamped at zero: a record from
// the future counts as new and expires MaxAge after Open, never "forever".
// Across a restart the wall clock is the only witness: if it jumped
// forward while the process was down, old-looking records expire. A
// segment expires when its newest record is older than MaxAge; segments
// also roll after MaxAge/16, so a record lives at most about 17/16 MaxAge.
//
// # Recovery
//
// Open scans every segment of every stream, in order:
//
//		segment bytes:  [rec 7][rec 8][##damage##][rec 10][rec 11][torn...]
//		                                 |                              |
//		   skip: resynchronise on the next |          truncate: nothing   |
//		   magic whose header CRC, data    |          valid follows, cut  |
//		   CRC and increasing sequence     |          the file after 11   |
//		   number hold; loss 9 "corrupt"   +------------------------------+
//
//	  - A damaged tail (torn write, appended garbage) is truncated. If the
//	    tail starts with a complete frame whose data fails its checksum, that
//	    record counts as corrupt (it may have been acknowledged); a torn frame
//	    does not (it never was).
//	  - Damage between valid records is skipped (the bytes stay and are
//	    skipped on every read) and the missing sequence numbers are counted
//	    and logged as corrupt.
//	  - A segment that cannot be opened or read, or holds no valid frame, is
//	    renamed into quarantine/ and its numbers logged as quarantined. A gap
//	    between segments is logged as missing. An empty segment is removed
//	    unless it is the last one.
//	  - A damaged cursor is reset to the oldest record (duplicates, not loss).
//	    A cursor past the data keeps its value: nothing below it is delivered
//	    and numbering continues at it, so the receiver never sees a number
//	    reused. A cursor before the first segment logs the gap as missing.
//	  - Gaps already in the loss log are not logged twice, so a second Open
//	    reports nothing new. Gaps below the cursor are not losses.
//
// Open never panics on any input (FuzzScanner) and returns a
// RecoveryReport listing events, losses and the time taken. Its cost is a
// read of all segment bytes.
//
// # Known limitations
//
//   - Resynchronisation after damage could accept a valid frame stored
//     inside another record's payload; both checksums and the increasing
//     sequence number make this unlikely but not impossible.
//   - After an fsync error the segment is sealed and its unacknowledged
//     records may still be delivered after a restart (at least once).
//   - Damage that appears after Open is skipped by readers but counted
//     only at the next Open.
package spool
