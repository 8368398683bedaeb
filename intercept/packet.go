package intercept

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/edgeward/edgeward/dnsguard"
)

const protoUDP = 17

// errNotUDP and errTruncated say why a queued packet cannot be judged;
// such a packet is dropped.
var (
	errNotUDP    = errors.New("not a UDP datagram")
	errTruncated = errors.New("truncated IP or UDP header")
)

// parseDatagram reads the addresses, ports and payload of a queued IPv4 or
// IPv6 UDP datagram. Netfilter hands over reassembled datagrams, so a
// fragment never arrives here; IPv6 extension headers are not walked (DNS
// datagrams carry none), and a packet with one is refused.
func parseDatagram(b []byte) (dnsguard.Intercepted, error) {
	if len(b) < 1 {
		return dnsguard.Intercepted{}, errTruncated
	}
	switch b[0] >> 4 {
	case 4:
		return parseIPv4(b)
	case 6:
		return parseIPv6(b)
	}
	return dnsguard.Intercepted{}, errNotUDP
}

func parseIPv4(b []byte) (dnsguard.Intercepted, error) {
	if len(b) < 20 {
		return dnsguard.Intercepted{}, errTruncated
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl {
		return dnsguard.Intercepted{}, errTruncated
	}
	if b[9] != protoUDP {
		return dnsguard.Intercepted{}, errNotUDP
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	return parseUDP(b[ihl:], src, dst)
}

func parseIPv6(b []byte) (dnsguard.Intercepted, error) {
	if len(b) < 40 {
		return dnsguard.Intercepted{}, errTruncated
	}
	if b[6] != protoUDP {
		return dnsguard.Intercepted{}, errNotUDP
	}
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	return parseUDP(b[40:], src, dst)
}

// parseUDP reads the ports and the payload, as long as the UDP length
// says (never past the buffer).
func parseUDP(b []byte, src, dst netip.Addr) (dnsguard.Intercepted, error) {
	if len(b) < 8 {
		return dnsguard.Intercepted{}, errTruncated
	}
	length := int(binary.BigEndian.Uint16(b[4:6]))
	if length < 8 || length > len(b) {
		return dnsguard.Intercepted{}, errTruncated
	}
	return dnsguard.Intercepted{
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:2])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:4])),
		Payload: b[8:length],
	}, nil
}
