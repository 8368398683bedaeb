package pkt

import (
	"encoding/binary"
	"testing"
)

// TestSetIPv4Checksum checks a header from 192.168.0.1 to 192.168.0.199
// whose checksum is known (0xb861); the wrong value in the field must not
// count.
func TestSetIPv4Checksum(t *testing.T) {
	ip := []byte{
		0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xff, 0xff,
		0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
	}
	SetIPv4Checksum(ip)
	if got := binary.BigEndian.Uint16(ip[10:]); got != 0xb861 {
		t.Errorf("checksum %#04x, want 0xb861", got)
	}
}
