package spool

import (
	"bytes"
	"hash/crc32"
	"testing"
	"time"
)

// FuzzScanner feeds arbitrary bytes to the segment scanner: it must not
// panic, must end, and may only return records whose checksums hold, in
// increasing sequence order, inside the input.
func FuzzScanner(f *testing.F) {
	var good []byte
	for i := range 3 {
		good = appendFrame(good, uint64(i+1), time.Unix(1, 0), []byte("payload"))
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(append(append([]byte{}, good...), 0xED, 'W', 'R', 0x01, 0xff))
	f.Add([]byte{})
	f.Add(bytes.Repeat(frameMagic[:], 20))

	f.Fuzz(func(t *testing.T, b []byte) {
		sc := newScanner(bytes.NewReader(b), 0, int64(len(b)), 0)
		var prev uint64
		for i := 0; i <= len(b); i++ {
			fr, ok := sc.next()
			if !ok {
				return
			}
			if fr.seq < prev || fr.end() > int64(len(b)) {
				t.Fatalf("record %d at %d: out of order or out of bounds", fr.seq, fr.off)
			}
			h, _ := decodeHeader(b[fr.off:])
			if crc32.Checksum(fr.data, castagnoli) != h.dataCRC {
				t.Fatalf("record %d returned with a bad checksum", fr.seq)
			}
			prev = fr.seq + 1
		}
		t.Fatal("scanner did not end")
	})
}
