package forward

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/spool"
)

// TestBackoffDelay checks growth, jitter and cap of the delays.
func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 500 * time.Millisecond, Max: 60 * time.Second}
	ms := time.Millisecond
	tests := []struct {
		rand float64
		want []time.Duration // after 1, 2, ... 9 failures
	}{
		{rand: 0, want: []time.Duration{500 * ms, 500 * ms, 500 * ms, 500 * ms, 500 * ms, 500 * ms, 500 * ms, 500 * ms, 500 * ms}},
		{rand: 0.5, want: []time.Duration{750 * ms, 1250 * ms, 2250 * ms, 4250 * ms, 8250 * ms, 16250 * ms, 30250 * ms, 30250 * ms, 30250 * ms}},
		{rand: 1, want: []time.Duration{1000 * ms, 2000 * ms, 4000 * ms, 8000 * ms, 16000 * ms, 32000 * ms, 60000 * ms, 60000 * ms, 60000 * ms}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rand), func(t *testing.T) {
			b.Rand = func() float64 { return tt.rand }
			var got []time.Duration
			for n := 1; n <= len(tt.want); n++ {
				got = append(got, b.delay(n))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBackoffJitter checks that real random delays differ, stay within
// [Min, ceiling) and never exceed Max, even after many failures.
func TestBackoffJitter(t *testing.T) {
	b := Backoff{Min: 500 * time.Millisecond, Max: 60 * time.Second}.withDefaults()
	seen := make(map[time.Duration]bool)
	for range 200 {
		d := b.delay(3)
		if d < b.Min || d >= 4*time.Second {
			t.Fatalf("delay %s after 3 failures outside [500ms, 4s)", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct delays of 200: no jitter", len(seen))
	}
	for n := 1; n < 1000; n *= 3 {
		if d := b.delay(n); d > b.Max {
			t.Errorf("delay %s after %d failures above max", d, n)
		}
	}
}

// fakeLink is a transport whose behaviour the test sets.
type fakeLink struct {
	mu       sync.Mutex
	connects int
	connErr  error
	sendErr  error
	sent     []uint64
}

func (l *fakeLink) connect(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.connects++
	return l.connErr
}

func (l *fakeLink) send(_ context.Context, recs []spool.Record) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sendErr != nil {
		return 0, l.sendErr
	}
	for _, r := range recs {
		l.sent = append(l.sent, r.Seq)
	}
	return len(recs), nil
}

func (l *fakeLink) lost() <-chan struct{} { return nil }
func (l *fakeLink) standing() bool        { return true }
func (l *fakeLink) close()                {}

// count returns how often connect was called.
func (l *fakeLink) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connects
}

// fakeClock records the waits asked for; each wait ends when the test
// says so (or at once, when auto is set).
type fakeClock struct {
	mu    sync.Mutex
	waits []time.Duration
	auto  bool
	asked chan struct{}
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	if c.auto {
		ch <- time.Time{}
	}
	select {
	case c.asked <- struct{}{}:
	default:
	}
	return ch
}

// delays returns the waits so far.
func (c *fakeClock) delays() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// fakeForwarder builds a forwarder on the fake link and clock.
func fakeForwarder(t *testing.T, link *fakeLink, clock *fakeClock, rnd func() float64) *Forwarder {
	t.Helper()
	f := newForwarder(t, openSpool(t), Options{
		URL: "https://127.0.0.1:1/", After: clock.after,
		Backoff: Backoff{Min: time.Second, Max: 8 * time.Second, Rand: rnd},
	})
	f.newTr = func() transport { return link }
	return f
}

// TestRunBackoff checks the waits Run asks for while the link fails.
func TestRunBackoff(t *testing.T) {
	link := &fakeLink{connErr: errors.New("dial: refused")}
	clock := &fakeClock{auto: true}
	f := fakeForwarder(t, link, clock, func() float64 { return 0.5 })
	runForwarder(t, f)

	eventually(t, 5*time.Second, "six waits", func() bool { return len(clock.delays()) >= 6 })
	want := []time.Duration{1500 * time.Millisecond, 2500 * time.Millisecond, 4500 * time.Millisecond, 4500 * time.Millisecond, 4500 * time.Millisecond, 4500 * time.Millisecond}
	if diff := cmp.Diff(want, clock.delays()[:6]); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if st := f.State(); st.Up || st.LastError != "dial: refused" || st.Failures < 6 {
		t.Errorf("state %+v, want down with the dial error", st)
	}
}

// TestKick checks that Kick ends a wait at once.
func TestKick(t *testing.T) {
	link := &fakeLink{connErr: errors.New("dial: refused")}
	clock := &fakeClock{asked: make(chan struct{}, 1)}
	f := fakeForwarder(t, link, clock, nil)
	runForwarder(t, f)

	for i := 1; i <= 3; i++ {
		select {
		case <-clock.asked:
		case <-time.After(5 * time.Second):
			t.Fatal("no wait")
		}
		if got := link.count(); got != i {
			t.Fatalf("%d connects before kick %d", got, i)
		}
		if f.State().NextTry.IsZero() {
			t.Errorf("state has no next try while waiting")
		}
		f.Kick()
		eventually(t, 5*time.Second, "a try after the kick", func() bool { return link.count() == i+1 })
	}
}

// TestBackoffReset checks that failures are forgotten only after the
// link delivered for ResetAfter.
func TestBackoffReset(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newForwarder(t, openSpool(t), Options{URL: "https://127.0.0.1:1/", Now: func() time.Time { return now }})
	fail := errors.New("boom")
	steps := []struct {
		advance time.Duration
		event   string
		want    int
	}{
		{0, "fail", 1},
		{0, "fail", 2},
		{0, "success", 2},
		{10 * time.Second, "success", 2},
		{5 * time.Second, "fail", 3}, // up only 15 s: no reset
		{0, "success", 3},
		{31 * time.Second, "success", 0},
		{0, "fail", 1},
		{0, "success", 1},
		{40 * time.Second, "fail", 1}, // up 40 s, failing: reset first
	}
	var got []int
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.event == "fail" {
			f.failed(fail)
		} else {
			f.succeeded()
		}
		got = append(got, f.State().Failures)
	}
	var want []int
	for _, s := range steps {
		want = append(want, s.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failures after each step (-want +got):\n%s", diff)
	}
}
