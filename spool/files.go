package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File names inside a stream directory.
const (
	cursorFile    = "cursor"
	cursorTemp    = "cursor.tmp"
	lossFile      = "losses"
	lossOldFile   = "losses.1"
	quarantineDir = "quarantine"
	segmentExt    = ".seg"

	cursorSize  = 16
	lossSize    = 36
	lossMaxSize = 1 << 20
)

var (
	cursorMagic = [4]byte{0xED, 'W', 'C', 0x01}
	lossMagic   = [4]byte{0xED, 'W', 'L', 0x01}
)

// segmentName returns the file name of the segment whose first sequence
// number is base; the zero padding makes names sort in sequence order.
func segmentName(base uint64) string {
	return fmt.Sprintf("%020d%s", base, segmentExt)
}

// parseSegmentName returns the base sequence number encoded in name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil
}

// encodeCursor returns the on-disk form of a cursor value.
func encodeCursor(seq uint64) []byte {
	b := make([]byte, cursorSize)
	copy(b[0:4], cursorMagic[:])
	binary.LittleEndian.PutUint64(b[4:12], seq)
	binary.LittleEndian.PutUint32(b[12:16], crc32.Checksum(b[:12], castagnoli))
	return b
}

// decodeCursor parses a cursor file; ok is false for anything damaged.
func decodeCursor(b []byte) (uint64, bool) {
	if len(b) != cursorSize || [4]byte(b[0:4]) != cursorMagic {
		return 0, false
	}
	if crc32.Checksum(b[:12], castagnoli) != binary.LittleEndian.Uint32(b[12:16]) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[4:12]), true
}

// readCursor returns the cursor stored in dir. found is false when there is
// no cursor file; an error means the file exists but cannot be trusted.
func readCursor(dir string) (seq uint64, found bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, true, fmt.Errorf("read cursor: %w", err)
	}

	seq, ok := decodeCursor(b)
	if !ok {
		return 0, true, fmt.Errorf("read cursor: %d bytes fail the checksum", len(b))
	}
	return seq, true, nil
}

// writeCursor replaces the cursor file atomically: temporary file, fsync,
// rename, fsync of the directory. A crash leaves the old or the new value.
// On a full disk, where even a small new file cannot be created, it
// overwrites the 16 bytes in place instead: a torn overwrite fails the
// checksum and recovery then re-delivers from the oldest record
// (duplicates, never loss). Without this an acknowledgement, the only way
// to free space under reject, could not be stored on a full disk.
func (s *Spool) writeCursor(dir string, seq uint64) error {
	err := s.replaceCursor(dir, seq)
	if err == nil || !isNoSpace(err) {
		return err
	}
	return s.overwriteCursor(dir, seq)
}

// overwriteCursor writes the cursor in place and fsyncs it.
func (s *Spool) overwriteCursor(dir string, seq uint64) error {
	f, err := os.OpenFile(filepath.Join(dir, cursorFile), os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("write cursor in place: %w", err)
	}
	defer f.Close()

	if _, err := f.WriteAt(encodeCursor(seq), 0); err != nil {
		return fmt.Errorf("write cursor in place: %w", err)
	}
	if err := s.fsync(f); err != nil {
		return fmt.Errorf("write cursor in place: %w", err)
	}
	return nil
}

// replaceCursor writes the cursor through a temporary file and a rename.
func (s *Spool) replaceCursor(dir string, seq uint64) error {
	tmp := filepath.Join(dir, cursorTemp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("write cursor: %w", err)
	}

	_, err = f.Write(encodeCursor(seq))
	if err == nil {
		err = s.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write cursor: %w", err)
	}

	if err := os.Rename(tmp, filepath.Join(dir, cursorFile)); err != nil {
		return fmt.Errorf("write cursor: %w", err)
	}
	return s.syncDir(dir)
}

// syncDir fsyncs a directory so that creations, renames and removals in it
// are durable.
func (s *Spool) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()

	if err := s.fsync(d); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// fsync flushes f, counts the call and records its duration.
func (s *Spool) fsync(f *os.File) error {
	start := time.Now()
	err := f.Sync()
	s.stats.observeFsync(time.Since(start))

	if s.fsyncHook != nil {
		s.fsyncHook()
	}
	return err
}

// LossRange is a run of sequence numbers of one stream that the spool
// dropped without forwarding them, as kept in the stream's loss log.
type LossRange struct {
	First, Last uint64
	Reason      DropReason
	Time        time.Time // when the loss was recorded (wall clock)
}

// encodeLoss returns the on-disk form of a loss log entry.
func encodeLoss(l LossRange) []byte {
	b := make([]byte, lossSize)
	copy(b[0:4], lossMagic[:])
	binary.LittleEndian.PutUint32(b[4:8], l.Reason.code())
	binary.LittleEndian.PutUint64(b[8:16], l.First)
	binary.LittleEndian.PutUint64(b[16:24], l.Last)
	binary.LittleEndian.PutUint64(b[24:32], uint64(l.Time.UnixNano()))
	binary.LittleEndian.PutUint32(b[32:36], crc32.Checksum(b[:32], castagnoli))
	return b
}

// decodeLoss parses one loss log entry; ok is false for a damaged one.
func decodeLoss(b []byte) (LossRange, bool) {
	if [4]byte(b[0:4]) != lossMagic {
		return LossRange{}, false
	}
	if crc32.Checksum(b[:32], castagnoli) != binary.LittleEndian.Uint32(b[32:36]) {
		return LossRange{}, false
	}
	return LossRange{
		Reason: reasonFromCode(binary.LittleEndian.Uint32(b[4:8])),
		First:  binary.LittleEndian.Uint64(b[8:16]),
		Last:   binary.LittleEndian.Uint64(b[16:24]),
		Time:   time.Unix(0, int64(binary.LittleEndian.Uint64(b[24:32]))),
	}, true
}

// appendLoss adds an entry to the loss log of the stream in dir and fsyncs
// it. When the log passes lossMaxSize it is renamed to losses.1 first, so
// the two files together stay under twice that size.
func (s *Spool) appendLoss(dir string, l LossRange) error {
	path := filepath.Join(dir, lossFile)
	if fi, err := os.Stat(path); err == nil && fi.Size() >= lossMaxSize {
		if err := os.Rename(path, filepath.Join(dir, lossOldFile)); err != nil {
			return fmt.Errorf("rotate loss log: %w", err)
		}
	}

	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("append loss log: %w", err)
	}
	defer f.Close()

	// A torn earlier entry leaves a partial tail; pad to an entry boundary
	// so that this entry stays readable.
	if fi, err := f.Stat(); err == nil && fi.Size()%lossSize != 0 {
		f.Write(make([]byte, lossSize-fi.Size()%lossSize))
	}

	if _, err := f.Write(encodeLoss(l)); err != nil {
		return fmt.Errorf("append loss log: %w", err)
	}
	if err := s.fsync(f); err != nil {
		return fmt.Errorf("append loss log: %w", err)
	}
	return nil
}

// readLosses returns the entries of the loss logs in dir, oldest first,
// skipping damaged entries.
func readLosses(dir string) ([]LossRange, error) {
	var out []LossRange
	for _, name := range []string{lossOldFile, lossFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("read loss log: %w", err)
		}

		for off := 0; off+lossSize <= len(b); off += lossSize {
			if l, ok := decodeLoss(b[off : off+lossSize]); ok {
				out = append(out, l)
			}
		}
	}
	return out, nil
}
