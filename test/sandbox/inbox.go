package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
)

// Delivery is one spool record as an upstream in the sandbox received
// it: the envelope of spool/forward's wire format, decoded.
type Delivery struct {
	Stream string
	Seq    uint64
	// Data is the record: the envelope's "data" as compact JSON text, or
	// its "data_b64" decoded.
	Data string
}

// envelope is the JSON object spool/forward sends per record.
type envelope struct {
	Stream  string          `json:"stream"`
	Seq     uint64          `json:"seq"`
	Time    string          `json:"time"`
	Data    json.RawMessage `json:"data"`
	DataB64 string          `json:"data_b64"`
}

// parseEnvelope decodes one envelope; it fails on malformed JSON, a
// missing stream, sequence number or time, or bad base64.
func parseEnvelope(line []byte) (Delivery, error) {
	var e envelope
	if err := json.Unmarshal(line, &e); err != nil {
		return Delivery{}, fmt.Errorf("envelope %q: %w", line, err)
	}
	if e.Stream == "" || e.Seq == 0 || e.Time == "" {
		return Delivery{}, fmt.Errorf("envelope %q: stream, seq or time missing", line)
	}
	d := Delivery{Stream: e.Stream, Seq: e.Seq, Data: string(e.Data)}
	if e.Data == nil {
		raw, err := base64.StdEncoding.DecodeString(e.DataB64)
		if err != nil {
			return Delivery{}, fmt.Errorf("envelope %q: data_b64: %w", line, err)
		}
		d.Data = string(raw)
	}
	return d, nil
}

// Inbox collects what an upstream received, in arrival order, and what
// it found wrong (malformed envelopes, headers that disagree with the
// body). It is safe for concurrent use.
type Inbox struct {
	mu       sync.Mutex
	list     []Delivery
	problems []string
}

// Deliveries returns a copy of every delivery so far, duplicates
// included, in arrival order.
func (in *Inbox) Deliveries() []Delivery {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Delivery(nil), in.list...)
}

// Problems returns what the upstream found wrong so far.
func (in *Inbox) Problems() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.problems...)
}

func (in *Inbox) add(ds ...Delivery) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.list = append(in.list, ds...)
}

func (in *Inbox) problem(format string, args ...any) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.problems = append(in.problems, fmt.Sprintf(format, args...))
}

// replaceServer closes the in-process server listening on addr (one of
// the topology's, see servers.go), so that another can take the address.
// It fails when no server listens there.
func (s *Sandbox) replaceServer(addr string) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	for i, c := range s.srv.closers {
		ln, ok := c.(net.Listener)
		if !ok || ln.Addr().String() != addr {
			continue
		}
		s.srv.closers = append(s.srv.closers[:i], s.srv.closers[i+1:]...)
		if err := ln.Close(); err != nil {
			return fmt.Errorf("free %s: %w", addr, err)
		}
		return nil
	}
	return fmt.Errorf("free %s: no sandbox server listens there", addr)
}

// closerFunc adapts a function to io.Closer, for servers.track.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

var _ io.Closer = closerFunc(nil)
