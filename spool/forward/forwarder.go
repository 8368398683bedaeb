package forward

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeward/edgeward/spool"
)

// ErrRunning means Run was called while another Run of the same
// Forwarder was still going.
var ErrRunning = errors.New("forwarder already running")

// errLinkLost ends a session whose standing link broke while idle.
var errLinkLost = errors.New("link lost")

// Forwarder sends a spool's streams upstream; see the package doc. Its
// methods are safe for concurrent use; Run runs once at a time.
type Forwarder struct {
	s     *spool.Spool
	opts  Options
	up    upstream
	kick  chan struct{}
	newTr func() transport

	running atomic.Bool
	metrics *metrics

	mu    sync.Mutex
	state State

	// suspects holds, per stream, the record the upstream last rejected
	// and how often; only Run's goroutine touches it. At most one entry
	// per stream, so it is bounded by the spool's MaxStreams.
	suspects map[string]suspect
}

// suspect is a record the upstream rejected, with its count of tries.
type suspect struct {
	seq   uint64
	tries int
}

// New checks opts and prepares a Forwarder for s; it dials nothing.
// Errors name the offending option.
func New(s *spool.Spool, opts Options) (*Forwarder, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	up, proxy, err := parseUpstream(opts)
	if err != nil {
		return nil, err
	}

	f := &Forwarder{
		s:        s,
		opts:     opts,
		up:       up,
		kick:     make(chan struct{}, 1),
		metrics:  newMetrics(),
		suspects: make(map[string]suspect),
	}
	f.newTr = f.transportFactory(proxy)
	return f, nil
}

// transportFactory returns the constructor of links for the upstream.
func (f *Forwarder) transportFactory(proxy *url.URL) func() transport {
	if f.up.mqtt {
		return func() transport { return newMQTTLink(f.opts, f.up, proxy) }
	}
	client := newHTTPClient(f.opts, proxy)
	link := &httpsLink{client: client, url: f.up.url.String()}
	return func() transport { return link }
}

// Kick makes a waiting forwarder try at once, for example when a VPN
// interface came up. It never blocks; kicks while a try is under way
// cut the next wait short.
func (f *Forwarder) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Run forwards until ctx ends, then returns nil. It returns an error only
// when it cannot go on: the spool was closed, or Run is already running.
// Link failures are retried with backoff and reported through State.
func (f *Forwarder) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer f.running.Store(false)
	defer f.stopped()

	r := f.s.NewReader()
	defer r.Close()

	for {
		err := f.session(ctx, r)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, spool.ErrClosed) {
			return fmt.Errorf("forward: %w", err)
		}

		r.Rewind()
		if !f.wait(ctx, f.failed(err)) {
			return nil
		}
	}
}

// wait sleeps for d, less if kicked; false when ctx ended.
func (f *Forwarder) wait(ctx context.Context, d time.Duration) bool {
	defer f.waited()
	select {
	case <-ctx.Done():
		return false
	case <-f.kick:
		return true
	case <-f.opts.After(d):
		return true
	}
}

// session connects once and forwards until an error: a link failure, a
// rejection still under MaxTries, or the end of ctx.
func (f *Forwarder) session(ctx context.Context, r *spool.Reader) error {
	t := f.newTr()
	defer t.close()

	if err := t.connect(ctx); err != nil {
		return err
	}
	if t.standing() {
		f.linkUp()
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watchLink(sctx, cancel, t.lost())

	for {
		recs, err := r.Next(sctx, f.opts.BatchRecords)
		if err != nil {
			if ctx.Err() == nil && sctx.Err() != nil {
				return errLinkLost
			}
			return err
		}
		if err := f.forward(ctx, r, t, recs); err != nil {
			return err
		}
	}
}

// watchLink cancels the session when its link breaks.
func watchLink(ctx context.Context, cancel func(), lost <-chan struct{}) {
	select {
	case <-lost:
		cancel()
	case <-ctx.Done():
	}
}

// isDeadLetter reports whether stream is a dead-letter stream, which is
// kept locally and never forwarded.
func (f *Forwarder) isDeadLetter(stream string) bool {
	return strings.HasSuffix(stream, f.opts.DeadLetterSuffix)
}

// forwardedStreams names the spool's streams that the forwarder sends:
// all but the dead-letter streams.
func (f *Forwarder) forwardedStreams() []string {
	var out []string
	for _, st := range f.s.Stats().Streams {
		if !f.isDeadLetter(st.Stream) {
			out = append(out, st.Stream)
		}
	}
	return out
}

// deadLetterStream names the dead-letter stream of stream, shortening
// the stream part when the whole would exceed the name limit.
func (f *Forwarder) deadLetterStream(stream string) string {
	suffix := f.opts.DeadLetterSuffix
	if len(stream)+len(suffix) > 64 {
		stream = stream[:64-len(suffix)]
	}
	return stream + suffix
}
