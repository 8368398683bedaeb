package forward

import (
	"errors"
	"time"
)

// State is the forwarder's view of the upstream, for status output and
// metrics. Times are zero when the event has not happened yet.
type State struct {
	// Up is true while the link is established (MQTT: after CONNACK) or,
	// for HTTPS, since the last request that was answered at all.
	Up bool
	// Since is when Up last changed.
	Since time.Time
	// LastError describes the last failure; it stays after a recovery.
	LastError     string
	LastErrorTime time.Time
	// LastSuccess is when the upstream last acknowledged a batch.
	LastSuccess time.Time
	// Failures counts failures since the backoff was last reset.
	Failures int
	// NextTry is when the forwarder retries, zero unless it is waiting.
	NextTry time.Time
	// DeadLettered counts records moved to dead-letter streams.
	DeadLettered uint64
}

// State returns a snapshot of the upstream state. It is safe to call
// from any goroutine.
func (f *Forwarder) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// linkUp notes that a link was established.
func (f *Forwarder) linkUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setUpLocked(true, f.opts.Now())
}

// succeeded notes an acknowledged batch and resets the backoff once the
// link has delivered for Backoff.ResetAfter.
func (f *Forwarder) succeeded() {
	f.mu.Lock()
	defer f.mu.Unlock()

	now := f.opts.Now()
	f.setUpLocked(true, now)
	f.state.LastSuccess = now
	if now.Sub(f.state.Since) >= f.opts.Backoff.ResetAfter {
		f.state.Failures = 0
	}
}

// failed notes a failure and returns how long to wait before the next
// try. A rejection leaves Up alone: the upstream answered.
func (f *Forwarder) failed(err error) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()

	now := f.opts.Now()
	if f.state.Up && now.Sub(f.state.Since) >= f.opts.Backoff.ResetAfter {
		f.state.Failures = 0
	}
	var rej *RejectedError
	if !errors.As(err, &rej) {
		f.setUpLocked(false, now)
	}

	f.state.LastError = err.Error()
	f.state.LastErrorTime = now
	f.state.Failures++
	d := f.opts.Backoff.delay(f.state.Failures)
	f.state.NextTry = now.Add(d)
	return d
}

// setUpLocked changes Up and stamps Since when it changes.
func (f *Forwarder) setUpLocked(up bool, now time.Time) {
	if f.state.Up != up {
		f.state.Up, f.state.Since = up, now
	}
}

// waited clears NextTry after a wait.
func (f *Forwarder) waited() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state.NextTry = time.Time{}
}

// stopped marks the link down when Run returns.
func (f *Forwarder) stopped() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setUpLocked(false, f.opts.Now())
	f.state.NextTry = time.Time{}
}

// deadLettered counts one dead-lettered record.
func (f *Forwarder) deadLettered(stream string) {
	f.mu.Lock()
	f.state.DeadLettered++
	f.mu.Unlock()
	f.metrics.dead.WithLabelValues(stream).Inc()
}
