package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"time"
)

// Frame layout, little endian. See doc.go for the picture.
const (
	headerSize = 32

	// maxFrameData is the largest payload the format accepts, whatever
	// Options.MaxRecordBytes says, so that lowering the option never
	// turns old records into corruption.
	maxFrameData = 64 << 20

	// scanWindow is how much of a segment a scanner reads at once.
	scanWindow = 256 << 10
)

// frameMagic starts every record; its last byte is the format version.
var frameMagic = [4]byte{0xED, 'W', 'R', 0x01}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameHeader is the decoded fixed part of a record on disk.
type frameHeader struct {
	length  uint32
	seq     uint64
	unixNs  int64
	dataCRC uint32
}

// frameSize returns the bytes a record with n bytes of data takes on disk.
func frameSize(n int) int64 {
	return int64(headerSize + n)
}

// appendFrame encodes one record at the end of dst and returns it.
func appendFrame(dst []byte, seq uint64, t time.Time, data []byte) []byte {
	var h [headerSize]byte
	copy(h[0:4], frameMagic[:])
	binary.LittleEndian.PutUint32(h[4:8], uint32(len(data)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	binary.LittleEndian.PutUint64(h[16:24], uint64(t.UnixNano()))
	binary.LittleEndian.PutUint32(h[24:28], crc32.Checksum(data, castagnoli))
	binary.LittleEndian.PutUint32(h[28:32], crc32.Checksum(h[:28], castagnoli))

	dst = append(dst, h[:]...)
	return append(dst, data...)
}

// decodeHeader checks magic, header checksum and length bound of b, which
// must hold at least headerSize bytes. It reports false for anything that
// is not a plausible header; the payload is not checked here.
func decodeHeader(b []byte) (frameHeader, bool) {
	if !bytes.Equal(b[0:4], frameMagic[:]) {
		return frameHeader{}, false
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:32]) {
		return frameHeader{}, false
	}

	h := frameHeader{
		length:  binary.LittleEndian.Uint32(b[4:8]),
		seq:     binary.LittleEndian.Uint64(b[8:16]),
		unixNs:  int64(binary.LittleEndian.Uint64(b[16:24])),
		dataCRC: binary.LittleEndian.Uint32(b[24:28]),
	}
	return h, h.length <= maxFrameData
}

// frame is one record found by a scanner.
type frame struct {
	off  int64 // offset of the header in the segment
	seq  uint64
	time time.Time
	data []byte // valid until the next call to next
}

// end returns the offset just past the frame.
func (f frame) end() int64 {
	return f.off + frameSize(len(f.data))
}

// skip describes bytes a scanner stepped over because they held no valid
// record. badSeq is set when the bytes started with an intact header whose
// payload failed its checksum: that record is known to be lost.
type skip struct {
	off    int64
	n      int64
	badSeq uint64
	hasSeq bool
}

// scanner walks the records of one segment through an io.ReaderAt up to a
// limit. It never trusts a length that the header checksum does not cover,
// resynchronises after damage by searching for the next valid header, and
// accepts only strictly increasing sequence numbers (minSeq is the least
// acceptable one). Every call advances by at least one byte, so a scan of
// n bytes ends after at most n calls.
type scanner struct {
	r      io.ReaderAt
	off    int64
	limit  int64
	minSeq uint64

	buf    []byte
	bufOff int64

	// skips collects damaged ranges found since the last reset.
	skips []skip
	// err is a read error other than a short read; the scan stops there.
	err error
}

// newScanner returns a scanner over r from off up to limit.
func newScanner(r io.ReaderAt, off, limit int64, minSeq uint64) *scanner {
	return &scanner{r: r, off: off, limit: limit, minSeq: minSeq}
}

// window returns the n bytes at off, reading ahead; ok is false when they
// are past the limit or cannot be read.
func (sc *scanner) window(off int64, n int) ([]byte, bool) {
	if off+int64(n) > sc.limit {
		return nil, false
	}
	if off >= sc.bufOff && off+int64(n) <= sc.bufOff+int64(len(sc.buf)) {
		start := off - sc.bufOff
		return sc.buf[start : start+int64(n)], true
	}

	size := max(n, scanWindow)
	size = int(min(int64(size), sc.limit-off))
	if cap(sc.buf) < size {
		sc.buf = make([]byte, size)
	}
	sc.buf = sc.buf[:size]
	sc.bufOff = off

	got, err := sc.r.ReadAt(sc.buf, off)
	sc.buf = sc.buf[:got]
	if err != nil && !errors.Is(err, io.EOF) {
		sc.err = err
	}
	if got < n {
		return nil, false
	}
	return sc.buf[:n], true
}

// next returns the next valid record, or ok=false at the end of the
// readable range. Damaged ranges on the way are appended to sc.skips.
func (sc *scanner) next() (frame, bool) {
	for sc.off < sc.limit && sc.err == nil {
		f, bad, ok := sc.tryAt(sc.off)
		if ok {
			sc.off = f.end()
			sc.minSeq = f.seq + 1
			return f, true
		}
		if bad.hasSeq {
			sc.skips = append(sc.skips, bad)
			sc.off += bad.n
			continue
		}
		sc.resync()
	}
	return frame{}, false
}

// tryAt decodes a record at off. When the header is intact but the data
// is not, bad describes the whole frame so the caller can step over it.
func (sc *scanner) tryAt(off int64) (frame, skip, bool) {
	hb, ok := sc.window(off, headerSize)
	if !ok {
		return frame{}, skip{}, false
	}
	h, ok := decodeHeader(hb)
	if !ok || h.seq < sc.minSeq {
		return frame{}, skip{}, false
	}

	total := frameSize(int(h.length))
	fb, ok := sc.window(off, int(total))
	if !ok {
		return frame{}, skip{}, false
	}
	data := fb[headerSize:]
	if crc32.Checksum(data, castagnoli) != h.dataCRC {
		return frame{}, skip{off: off, n: total, badSeq: h.seq, hasSeq: true}, false
	}

	f := frame{off: off, seq: h.seq, time: time.Unix(0, h.unixNs), data: data}
	return f, skip{}, true
}

// resync steps over damaged bytes at sc.off up to the next offset that
// starts with a valid record, or up to the limit, and records the skip.
func (sc *scanner) resync() {
	start := sc.off
	pos := start + 1

	for pos < sc.limit && sc.err == nil {
		cand, found := sc.findMagic(pos)
		if !found {
			pos = sc.limit
			break
		}
		if _, bad, ok := sc.tryAt(cand); ok || bad.hasSeq {
			pos = cand
			break
		}
		pos = cand + 1
	}

	sc.skips = append(sc.skips, skip{off: start, n: pos - start})
	sc.off = pos
}

// findMagic returns the offset of the next frame magic at or after pos.
func (sc *scanner) findMagic(pos int64) (int64, bool) {
	for pos < sc.limit && sc.err == nil {
		n := int(min(int64(scanWindow), sc.limit-pos))
		b, ok := sc.window(pos, n)
		if !ok {
			return 0, false
		}
		if i := bytes.Index(b, frameMagic[:]); i >= 0 {
			return pos + int64(i), true
		}
		// Keep the last bytes: a magic may straddle two windows.
		pos += int64(max(1, n-len(frameMagic)+1))
	}
	return 0, false
}
