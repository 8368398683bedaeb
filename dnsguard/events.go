package dnsguard

import (
	"sync"
	"time"
)

// limiter is a token bucket for events: burst tokens, refilled one per
// interval. It counts what it refuses so the next allowed event can say
// how many were lost.
type limiter struct {
	mu         sync.Mutex
	interval   time.Duration
	burst      float64
	tokens     float64
	last       time.Time
	suppressed uint64
	dropped    uint64 // total, for the metric
}

// newLimiter returns a full bucket.
func newLimiter(interval time.Duration, burst int) *limiter {
	return &limiter{interval: interval, burst: float64(burst), tokens: float64(burst)}
}

// allow takes a token at now. It returns whether the event may go out
// and how many were refused since the last one that went out.
func (l *limiter) allow(now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()

	if !l.last.IsZero() && now.After(l.last) {
		l.tokens += float64(now.Sub(l.last)) / float64(l.interval)
		l.tokens = min(l.tokens, l.burst)
	}
	if l.last.IsZero() || now.After(l.last) {
		l.last = now
	}

	if l.tokens < 1 {
		l.suppressed++
		l.dropped++
		return false, 0
	}
	l.tokens--
	n := l.suppressed
	l.suppressed = 0
	return true, n
}

// droppedTotal returns how many events the limiter refused so far.
func (l *limiter) droppedTotal() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}
