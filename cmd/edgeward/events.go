package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/loader"
)

// eventJSON is a deny event as the control socket streams it.
type eventJSON struct {
	Time       time.Time `json:"time"`
	Hook       string    `json:"hook"`
	Interface  string    `json:"interface"`
	Verdict    string    `json:"verdict"`
	Reason     string    `json:"reason"`
	Generation uint32    `json:"generation"`
	Proto      uint8     `json:"proto"`
	Src        string    `json:"src"`
	Dst        string    `json:"dst"`
	SrcPort    uint16    `json:"src_port,omitempty"`
	DstPort    uint16    `json:"dst_port,omitempty"`
}

// eventHub reads the kernel's deny events, logs them within a budget and
// hands them to followers (edgeward events). A slow follower misses events
// rather than slowing the others.
type eventHub struct {
	log    *slog.Logger
	names  func(int) string
	bootAt time.Time

	mu        sync.Mutex
	followers map[chan eventJSON]struct{}

	logged, suppressed atomic.Uint64
}

// Events logged per second at most, and at once after a quiet spell.
const (
	eventLogRate  = 5
	eventLogBurst = 20
)

func newEventHub(log *slog.Logger, names func(int) string) *eventHub {
	return &eventHub{log: log, names: names, bootAt: bootTime(), followers: map[chan eventJSON]struct{}{}}
}

// run reads events until the reader is closed.
func (h *eventHub) run(rd *loader.EventReader) {
	budget := newTokenBucket(eventLogRate, eventLogBurst)
	for {
		ev, err := rd.Read()
		if errors.Is(err, loader.ErrEventsClosed) {
			return
		}
		if err != nil {
			h.log.Warn("deny event unreadable", "err", err)
			continue
		}
		j := h.describe(ev)
		h.publish(j)
		if budget.take() {
			h.logged.Add(1)
			h.log.Info("deny", "hook", j.Hook, "interface", j.Interface, "verdict", j.Verdict,
				"reason", j.Reason, "generation", j.Generation, "proto", j.Proto,
				"src", j.Src, "src_port", j.SrcPort, "dst", j.Dst, "dst_port", j.DstPort)
		} else {
			h.suppressed.Add(1)
		}
	}
}

// logSuppressed says, at most once per interval, how many deny log lines
// the budget held back.
func (h *eventHub) logSuppressed(ctx context.Context, interval time.Duration) {
	var last uint64
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n := h.suppressed.Load(); n > last {
				h.log.Info("deny events not logged (over the log budget; see edgeward events and the metrics)", "count", n-last)
				last = n
			}
		}
	}
}

func (h *eventHub) describe(ev loader.Event) eventJSON {
	return eventJSON{
		Time:       h.bootAt.Add(ev.Since),
		Hook:       ev.Hook.String(),
		Interface:  h.names(ev.Ifindex),
		Verdict:    ev.Verdict.String(),
		Reason:     ev.Reason.String(),
		Generation: ev.Generation,
		Proto:      ev.Proto,
		Src:        ev.Src.String(),
		Dst:        ev.Dst.String(),
		SrcPort:    ev.SrcPort,
		DstPort:    ev.DstPort,
	}
}

func (h *eventHub) publish(ev eventJSON) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.followers {
		select {
		case ch <- ev:
		default: // a slow follower misses it
		}
	}
}

func (h *eventHub) follow() (chan eventJSON, func()) {
	ch := make(chan eventJSON, 256)
	h.mu.Lock()
	h.followers[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.followers, ch)
		h.mu.Unlock()
	}
}

// serveEvents streams events as NDJSON, filtered by the hook and reason
// query parameters, until the client goes away.
func (h *eventHub) serveEvents(w http.ResponseWriter, r *http.Request) {
	hook, reason := r.URL.Query().Get("hook"), r.URL.Query().Get("reason")
	ch, stop := h.follow()
	defer stop()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-ch:
			if (hook != "" && ev.Hook != hook) || (reason != "" && ev.Reason != reason) {
				continue
			}
			if enc.Encode(ev) != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// tokenBucket allows rate events per second, burst at once.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

func (b *tokenBucket) take() bool {
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// cmdEvents follows the running daemon's deny events.
func cmdEvents(args []string, stdout, stderr io.Writer) int {
	f := newFlags("events", stderr)
	hook := f.String("hook", "", "only events of this `hook` (tc_egress, uplink_ingress, xdp_lan)")
	reason := f.String("reason", "", "only events of this `reason` (no_rule, unsolicited, ...)")
	count := f.Int("n", 0, "stop after `N` events (0: follow until interrupted)")
	if status, ok := f.parse(args); !ok {
		return status
	}
	cfg, ok := f.loadConfig(stderr)
	if !ok {
		return exitUsage
	}

	q := url.Values{}
	if *hook != "" {
		q.Set("hook", *hook)
	}
	if *reason != "" {
		q.Set("reason", *reason)
	}
	client := controlClient(cfg.Paths.Socket)
	client.Timeout = 0
	resp, err := client.Get("http://edgeward/v1/events?" + q.Encode())
	if err != nil {
		daemonUnreachable(stderr, "events", cfg.Paths.Socket, err)
		return exitFailure
	}
	defer resp.Body.Close()
	return copyEvents(resp.Body, stdout, *count)
}

// copyEvents prints up to n NDJSON lines (all when n is 0).
func copyEvents(r io.Reader, w io.Writer, n int) int {
	sc := bufio.NewScanner(r)
	for seen := 0; sc.Scan(); seen++ {
		fmt.Fprintln(w, sc.Text())
		if n > 0 && seen+1 >= n {
			return exitOK
		}
	}
	return exitOK
}

// bootTime is the wall-clock time the kernel's boot clock started, to turn
// event times into dates.
func bootTime() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Now()
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}
