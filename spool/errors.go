package spool

import "errors"

// Sentinel errors. Callers test them with errors.Is; the returned errors
// wrap them with the stream name and, where there is one, the cause.
var (
	// ErrFull means the stream or the spool reached its byte cap, or the
	// disk is full, and the record was not stored (when_full: reject, or
	// drop_oldest found nothing it may drop).
	ErrFull = errors.New("spool full")

	// ErrRecordTooLarge means a record exceeds Options.MaxRecordBytes.
	ErrRecordTooLarge = errors.New("record too large")

	// ErrEmptyRecord means a record has no bytes.
	ErrEmptyRecord = errors.New("empty record")

	// ErrBadStreamName means a stream name does not match
	// [a-z0-9][a-z0-9._-]{0,63}.
	ErrBadStreamName = errors.New("bad stream name")

	// ErrTooManyStreams means a new stream would exceed Options.MaxStreams.
	ErrTooManyStreams = errors.New("too many streams")

	// ErrUnknownStream means an operation named a stream that does not exist.
	ErrUnknownStream = errors.New("unknown stream")

	// ErrAckRange means an acknowledgement named a sequence number that was
	// never appended.
	ErrAckRange = errors.New("ack beyond last appended record")

	// ErrClosed means the spool or the reader was closed.
	ErrClosed = errors.New("spool closed")
)
