package forward

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgeward/edgeward/spool"
)

// forward sends records of one stream handed out by the reader, in
// batches of at most BatchBytes. Dead-letter streams are skipped.
func (f *Forwarder) forward(
	ctx context.Context, r *spool.Reader, t transport, recs []spool.Record,
) error {
	if f.isDeadLetter(recs[0].Stream) {
		return nil
	}

	for len(recs) > 0 {
		n := f.batchLen(recs)
		if err := f.deliver(ctx, r, t, recs[:n]); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// batchLen returns how many leading records make one batch: at least
// one, within BatchBytes, and only the first if it is a suspect.
func (f *Forwarder) batchLen(recs []spool.Record) int {
	if s, ok := f.suspects[recs[0].Stream]; ok && s.seq == recs[0].Seq {
		return 1
	}

	size := 0
	for i, rec := range recs {
		size += len(rec.Data)
		if i > 0 && size > f.opts.BatchBytes {
			return i
		}
	}
	return len(recs)
}

// deliver sends one batch and acknowledges, in the spool, the records the
// upstream acknowledged. On a rejection it retries the rest one record at
// a time, so that one bad record does not take its neighbours with it.
func (f *Forwarder) deliver(
	ctx context.Context, r *spool.Reader, t transport, batch []spool.Record,
) error {
	start := time.Now()
	n, err := t.send(ctx, batch)
	f.metrics.observe(resultOf(err), time.Since(start))

	if n > 0 {
		if err := f.ack(r, batch[n-1]); err != nil {
			return err
		}
	}
	if err == nil {
		return nil
	}

	var rej *RejectedError
	if !errors.As(err, &rej) {
		return err
	}
	rest := batch[n:]
	if len(rest) > 1 {
		return f.oneByOne(ctx, r, t, rest)
	}
	return f.rejected(ctx, r, rest[0], rej)
}

// oneByOne delivers records singly.
func (f *Forwarder) oneByOne(
	ctx context.Context, r *spool.Reader, t transport, recs []spool.Record,
) error {
	for i := range recs {
		if err := f.deliver(ctx, r, t, recs[i:i+1]); err != nil {
			return err
		}
	}
	return nil
}

// ack moves the stream's cursor past last and forgets a suspect it
// passed.
func (f *Forwarder) ack(r *spool.Reader, last spool.Record) error {
	if err := r.Ack(last.Stream, last.Seq); err != nil {
		return fmt.Errorf("ack %s %d: %w", last.Stream, last.Seq, err)
	}

	if s, ok := f.suspects[last.Stream]; ok && s.seq <= last.Seq {
		delete(f.suspects, last.Stream)
	}
	f.succeeded()
	return nil
}

// rejected counts a try of a record sent alone and refused. Below
// MaxTries it returns the refusal, so the forwarder backs off and tries
// again; at MaxTries the record goes to the dead-letter stream and the
// stream goes on.
func (f *Forwarder) rejected(
	ctx context.Context, r *spool.Reader, rec spool.Record, rej *RejectedError,
) error {
	s := f.suspects[rec.Stream]
	if s.seq != rec.Seq {
		s = suspect{seq: rec.Seq}
	}
	s.tries++
	f.suspects[rec.Stream] = s

	if s.tries < f.opts.MaxTries {
		return fmt.Errorf("%s %d, try %d of %d: %w", rec.Stream, rec.Seq, s.tries, f.opts.MaxTries, rej)
	}
	return f.deadLetter(ctx, r, rec, rej)
}

// deadLetter appends rec, in its envelope with the refusal, to the
// dead-letter stream, then discards it from its own stream. A crash
// between the two leaves a duplicate dead letter, never a loss. If the
// append fails (spool full) the record stays and the error is returned.
func (f *Forwarder) deadLetter(
	ctx context.Context, r *spool.Reader, rec spool.Record, rej *RejectedError,
) error {
	dead := f.deadLetterStream(rec.Stream)
	if _, _, err := f.s.Append(ctx, dead, envelope(rec, rej.Error())); err != nil {
		return fmt.Errorf("dead letter %s %d to %s: %w", rec.Stream, rec.Seq, dead, err)
	}

	if err := r.Discard(rec.Stream, rec.Seq, spool.DropDeadLetter); err != nil {
		return fmt.Errorf("discard %s %d: %w", rec.Stream, rec.Seq, err)
	}
	delete(f.suspects, rec.Stream)
	f.deadLettered(rec.Stream)
	return nil
}

// resultOf maps a send error to the result label.
func resultOf(err error) string {
	var rej *RejectedError
	switch {
	case err == nil:
		return resultOK
	case errors.As(err, &rej):
		return resultRejected
	default:
		return resultFailed
	}
}
