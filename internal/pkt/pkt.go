// Package pkt builds raw packets for tests and for explaining verdicts:
// Ethernet, VLAN tags, IPv4 (with options and fragments), IPv6 (with
// extension headers), TCP, UDP, ICMP and ARP. Checksums are left zero: the
// data plane does not verify them. SetIPv4Checksum fills in the IPv4
// header's for packets that go through a real stack.
package pkt

import (
	"encoding/binary"
	"net/netip"
)

// EtherTypes used by the builders.
const (
	EtherIPv4   = 0x0800
	EtherARP    = 0x0806
	EtherIPv6   = 0x86dd
	Ether8021Q  = 0x8100
	Ether8021AD = 0x88a8
)

// IP protocol numbers used by the builders.
const (
	ProtoHopOpts  = 0
	ProtoICMP     = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoICMPv6   = 58
	ProtoNone     = 59
	ProtoDstOpts  = 60
)

var (
	srcMAC = []byte{0x02, 0, 0, 0, 0, 1}
	dstMAC = []byte{0x02, 0, 0, 0, 0, 2}
)

// Ether prepends an Ethernet header with the given type.
func Ether(etherType uint16, payload []byte) []byte {
	b := append([]byte{}, dstMAC...)
	b = append(b, srcMAC...)
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, payload...)
}

// VLAN returns a tag of type tpid (0x8100 or 0x88a8) for VLAN id vid,
// followed by the inner EtherType and payload. Wrap it with Ether(tpid, …).
func VLAN(vid uint16, inner uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, vid&0x0fff)
	b = binary.BigEndian.AppendUint16(b, inner)
	return append(b, payload...)
}

// IPv4Options describe the less common parts of an IPv4 header.
type IPv4Options struct {
	IHL        uint8 // header length in words; 0 means 5 + len(Options)/4
	Options    []byte
	ID         uint16
	MoreFrags  bool
	FragOffset uint16 // in 8-byte units
}

// IPv4 builds an IPv4 header followed by payload.
func IPv4(src, dst netip.Addr, proto uint8, o IPv4Options, payload []byte) []byte {
	ihl := o.IHL
	if ihl == 0 {
		ihl = uint8(5 + len(o.Options)/4)
	}
	frag := o.FragOffset & 0x1fff
	if o.MoreFrags {
		frag |= 0x2000
	}

	b := []byte{0x40 | ihl&0x0f, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(20+len(o.Options)+len(payload)))
	b = binary.BigEndian.AppendUint16(b, o.ID)
	b = binary.BigEndian.AppendUint16(b, frag)
	b = append(b, 64, proto, 0, 0)
	s, d := src.As4(), dst.As4()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = append(b, o.Options...)
	return append(b, payload...)
}

// SetIPv4Checksum fills in the header checksum of the IPv4 packet ip (built
// by IPv4), which a stack checks before it forwards or delivers it.
func SetIPv4Checksum(ip []byte) {
	hlen := int(ip[0]&0x0f) * 4
	binary.BigEndian.PutUint16(ip[10:], 0)
	var sum uint32
	for i := 0; i+1 < hlen; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
}

// IPv6 builds an IPv6 header whose next header is next, followed by payload
// (extension headers included).
func IPv6(src, dst netip.Addr, next uint8, payload []byte) []byte {
	b := []byte{0x60, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, next, 64)
	s, d := src.As16(), dst.As16()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	return append(b, payload...)
}

// ExtHeader builds a hop-by-hop, routing or destination-options header of
// 8*(1+extraWords) bytes whose next header is next.
func ExtHeader(next uint8, extraWords uint8, payload []byte) []byte {
	b := make([]byte, 8*(1+int(extraWords)))
	b[0] = next
	b[1] = extraWords
	if len(b) > 2 {
		b[2] = 1 // PadN, so that the options parse
		b[3] = byte(len(b) - 4)
	}
	return append(b, payload...)
}

// FragHeader builds an IPv6 fragment header.
func FragHeader(next uint8, offset uint16, more bool, id uint32, payload []byte) []byte {
	off := offset << 3
	if more {
		off |= 1
	}
	b := []byte{next, 0}
	b = binary.BigEndian.AppendUint16(b, off)
	b = binary.BigEndian.AppendUint32(b, id)
	return append(b, payload...)
}

// TCP flags.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPAck = 0x10
)

// TCP builds a 20-byte TCP header with the SYN flag.
func TCP(sport, dport uint16) []byte {
	return TCPWithFlags(sport, dport, TCPSyn)
}

// TCPWithFlags builds a 20-byte TCP header with the given flags.
func TCPWithFlags(sport, dport uint16, flags uint8) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = append(b, make([]byte, 8)...)
	b = append(b, 5<<4, flags)
	return append(b, make([]byte, 6)...)
}

// UDP builds a UDP header followed by payload.
func UDP(sport, dport uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
	b = append(b, 0, 0)
	return append(b, payload...)
}

// ICMP builds an ICMP or ICMPv6 header of the given type and code with 4
// bytes of body.
func ICMP(typ, code uint8) []byte {
	return []byte{typ, code, 0, 0, 0, 0, 0, 0}
}

// ARPRequest builds an ARP who-has for target from sender.
func ARPRequest(sender, target netip.Addr) []byte {
	b := []byte{0, 1, 0x08, 0x00, 6, 4, 0, 1}
	b = append(b, srcMAC...)
	s, t := sender.As4(), target.As4()
	b = append(b, s[:]...)
	b = append(b, make([]byte, 6)...)
	return append(b, t[:]...)
}
