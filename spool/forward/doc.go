// Package forward sends the streams of a spool upstream, at least once
// and in order per stream: MQTT 3.1.1 over TLS (QoS 1, paho) or HTTPS
// POST of NDJSON batches, directly or through an HTTP CONNECT proxy. The
// package never logs: Run returns only when it cannot go on, failures are
// retried and shown by State and the Collector's metrics.
//
// # Data flow
//
//	spool.Reader.Next ──► batch (one stream, ≤ BatchRecords, ≤ BatchBytes)
//	        │                    │
//	        │        MQTT: publish each record (QoS 1), wait the PUBACKs
//	        │              in order, each within Timeout
//	        │        HTTPS: one POST, the answer within Timeout
//	        │                    │
//	        │     n records acknowledged ──► Reader.Ack(stream, seq of n-th)
//	        │                    │
//	        │     link failure ──► session ends: Reader.Rewind, backoff,
//	        │                      Kick cuts the wait, reconnect, re-send
//	        │                    │
//	        │     rejection (HTTP 4xx but 408/429) ──► the rest of the
//	        │         batch is sent one record at a time; a record refused
//	        │         alone MaxTries times is appended to <stream>.dead
//	        │         (envelope with "error") and Reader.Discard(…,
//	        │         DropDeadLetter) drops it; its neighbours go on
//	        ▼
//	  next batch (streams take turns inside the Reader)
//
// # Invariants
//
//   - A record is acknowledged in the spool only after this package saw
//     the upstream acknowledge it: paho's token of its own publish
//     completed without error (paho matches PUBACK to PUBLISH by packet
//     identifier), or a 2xx answered the POST that carried it. Only the
//     prefix of a batch up to the first failure is acknowledged.
//   - One session is one connection. The MQTT session is clean and paho's
//     automatic reconnect is off, so nothing unacknowledged waits in a
//     paho store: after any failure the Reader rewinds to the cursors and
//     records are sent again. Receivers de-duplicate on (stream, seq).
//   - Every network step has a deadline: TCP connect, proxy CONNECT, TLS
//     handshake, CONNACK (paho's ConnectTimeout), each PUBACK counted from
//     the previous one, the whole HTTP exchange. Keep-alive pings notice a
//     dead idle MQTT link.
//   - Backoff after the n-th failure in a row is random in
//     [Min, min(Max, Min·2^n)); the count resets only after the link
//     delivered for ResetAfter, so a link that breaks at once backs off.
//   - Dead-letter streams (names ending in DeadLetterSuffix) are never
//     forwarded: they stay in the spool for an operator, until its age
//     and size caps drop them.
//
// # Wire format
//
// Each record travels as one JSON object (one MQTT message, or one line
// of the NDJSON body):
//
//	{"stream":"line1","seq":42,"time":"2025-01-02T03:04:05.123Z","data":{"t":21.5}}
//	{"stream":"line1","seq":43,"time":"2025-01-02T03:04:05.456Z","data_b64":"AAEC"}
//
// "data" holds the record itself when it is valid JSON, with whitespace
// outside strings removed; any other record is in "data_b64" (standard
// base64). "time" is the append time, UTC. HTTPS batches also carry the
// headers Edgeward-Stream, Edgeward-First-Seq, Edgeward-Last-Seq and
// Edgeward-Records, and Content-Type application/x-ndjson.
//
// # Known limitations
//
//   - MQTT batches go in lock step: the next batch is published when the
//     previous one is acknowledged, so the drain rate is at most
//     BatchRecords per round trip. A broker that does not set TCP_NODELAY
//     delays its PUBACKs (about 40 ms per batch on loopback).
//   - MQTT 3.1.1 has no negative PUBACK: a broker that refuses a message
//     closes the connection (AWS IoT does so for a forbidden topic), which
//     looks like a link failure and is retried without end, holding that
//     stream back. Only a paho error on a still open link counts as a
//     rejection.
//   - TLS files are read once (LoadTLS); a rotated certificate needs a
//     new Forwarder.
//   - After each failure the Reader rewinds and re-reads dead-letter
//     streams only to skip them.
package forward
