package forward

import (
	"context"
	"fmt"

	"github.com/edgeward/edgeward/spool"
)

// transport is one link to the upstream, used by one session and then
// closed. A session ends at the first error.
type transport interface {
	// connect establishes the link; HTTPS has nothing to establish.
	connect(ctx context.Context) error
	// send delivers records of one stream in order and returns how many
	// of them, from the first, the upstream acknowledged. A
	// *RejectedError means the upstream refused records[n] for good.
	send(ctx context.Context, records []spool.Record) (n int, err error)
	// lost is closed when a standing link breaks on its own; nil when the
	// transport has no standing link.
	lost() <-chan struct{}
	// standing reports whether connect established a link worth calling
	// "up" by itself.
	standing() bool
	close()
}

// RejectedError is a permanent refusal by the upstream: an HTTP 4xx
// other than 408 and 429, or an MQTT publish error on an open link. The
// record is retried up to Options.MaxTries times, then dead-lettered.
type RejectedError struct {
	Status int    // HTTP status, 0 for MQTT
	Detail string // the upstream's words, cut short
}

func (e *RejectedError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("rejected by upstream: http %d: %s", e.Status, e.Detail)
	}
	return "rejected by upstream: " + e.Detail
}
