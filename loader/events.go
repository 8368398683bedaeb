package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// Event is a packet the data plane dropped, or in audit mode would have.
type Event struct {
	// Since is the kernel's boot clock when the packet was judged.
	Since      time.Duration
	Generation uint32
	Ifindex    int
	Hook       Hook
	Verdict    Verdict
	Reason     Reason
	Proto      uint8
	Src, Dst   netip.Addr
	// Ports are zero for packets without ports.
	SrcPort, DstPort uint16
}

// EventReader reads deny events from the kernel's ring buffer. There is one
// ring: two readers would split the events between them, so only the
// daemon reads it. Close it to stop a blocked Read.
type EventReader struct {
	rd *ringbuf.Reader
}

// ErrEventsClosed is returned by Read after Close.
var ErrEventsClosed = errors.New("event reader closed")

// Events opens a reader of the deny events.
func (l *Loader) Events() (*EventReader, error) {
	rd, err := ringbuf.NewReader(l.objs.Events)
	if err != nil {
		return nil, fmt.Errorf("open deny events: %w", err)
	}
	return &EventReader{rd: rd}, nil
}

// Read blocks until the next event. A record of the wrong size is skipped
// with an error, never misread.
func (r *EventReader) Read() (Event, error) {
	rec, err := r.rd.Read()
	if errors.Is(err, os.ErrClosed) {
		return Event{}, ErrEventsClosed
	}
	if err != nil {
		return Event{}, fmt.Errorf("read deny event: %w", err)
	}

	var raw edgewardEwEvent
	if err := raw.UnmarshalBinary(rec.RawSample); err != nil {
		return Event{}, err
	}
	return raw.event(), nil
}

// Close stops the reader.
func (r *EventReader) Close() error {
	return r.rd.Close()
}

// UnmarshalBinary decodes a ring buffer record.
func (e *edgewardEwEvent) UnmarshalBinary(b []byte) error {
	if _, err := binary.Decode(b, binary.NativeEndian, e); err != nil {
		return fmt.Errorf("decode deny event of %d bytes: %w", len(b), err)
	}
	return nil
}

func (e *edgewardEwEvent) event() Event {
	return Event{
		Since:      time.Duration(e.TimeNs),
		Generation: e.Generation,
		Ifindex:    int(e.Ifindex),
		Hook:       Hook(e.Hook),
		Verdict:    Verdict(e.Verdict),
		Reason:     Reason(e.Reason),
		Proto:      e.Proto,
		Src:        wordsAddr(e.Family, e.Saddr),
		Dst:        wordsAddr(e.Family, e.Daddr),
		SrcPort:    e.Sport,
		DstPort:    e.Dport,
	}
}

// wordsAddr undoes addrWords.
func wordsAddr(family uint8, w [4]uint32) netip.Addr {
	var b [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(b[i*4:], w[i])
	}
	if family == familyIPv4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	if family == familyIPv6 {
		return netip.AddrFrom16(b)
	}
	return netip.Addr{}
}

// EventLosses are deny events the kernel did not send.
type EventLosses struct {
	RateLimited uint64 `json:"rate_limited"` // over the per-CPU budget
	RingFull    uint64 `json:"ring_full"`    // the daemon did not read fast enough
}

// EventLosses reads the counts of events not sent, summed over CPUs.
func (m *Maps) EventLosses() (EventLosses, error) {
	var out EventLosses
	for cause, dst := range []*uint64{&out.RateLimited, &out.RingFull} {
		var perCPU []uint64
		if err := m.losses.Lookup(uint32(cause), &perCPU); err != nil {
			return out, fmt.Errorf("read lost events: %w", err)
		}
		for _, n := range perCPU {
			*dst += n
		}
	}
	return out, nil
}
