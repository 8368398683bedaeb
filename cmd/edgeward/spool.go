package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/spool"
	"github.com/edgeward/edgeward/spool/forward"
)

const (
	// spoolStopWait bounds how long stopSpool waits for in-flight appends
	// and for the forwarder before it closes the spool anyway.
	spoolStopWait = 5 * time.Second
	// vpnSettle is when the forwarder is kicked a second time after a VPN
	// interface came up: the tunnel's addresses and routes often follow
	// the link, so a try kicked at once may still fail.
	vpnSettle = 2 * time.Second
	// recoveryLogLines bounds the recovery events logged one by one.
	recoveryLogLines = 20
	// upstreamPoll is how often the forwarder's state is checked for the
	// log.
	upstreamPoll = time.Second
)

// spoolService is the running spool: the store, its ingest servers and
// the forwarder, if any.
type spoolService struct {
	spool     *spool.Spool
	dir       string
	servers   []*http.Server
	forwarder *forward.Forwarder // nil without spool.forward
	target    forwardTarget      // of the forwarder, for status
	cancel    context.CancelFunc // ends the forwarder
	done      sync.WaitGroup     // the forwarder and its state logger
}

// startSpool runs the spool when spool.listen is not empty: it binds
// every listen address first (a taken port fails the start and opens
// nothing), opens the spool and logs what recovery did, starts the
// forwarder when spool.forward is set and then serves the ingest API.
// It fails when an address cannot be bound, the spool directory cannot
// be used or is locked by another process, or the forward section is
// unusable (a TLS file that cannot be read); on failure nothing is left
// open.
func (d *daemon) startSpool(ctx context.Context, reg *prometheus.Registry) error {
	cfg := d.cfg.Spool
	if len(cfg.Listen) == 0 {
		return nil
	}
	token, err := readToken(cfg.TokenFile)
	if err != nil {
		return err
	}
	lns, err := bindSpool(cfg.Listen)
	if err != nil {
		return err
	}
	s, err := openSpool(cfg, d.log)
	if err != nil {
		closeAll(lns)
		return err
	}

	svc := &spoolService{spool: s, dir: cfg.Dir, cancel: func() {}}
	if cfg.Forward != nil {
		if err := d.startForwarder(ctx, svc, *cfg.Forward, reg); err != nil {
			closeAll(lns)
			return errors.Join(err, s.Close())
		}
	}
	reg.MustRegister(spool.NewCollector(s))
	svc.serve(lns, token, d.log)
	d.spool = svc
	d.log.Info("spool listening", "addresses", len(cfg.Listen), "dir", cfg.Dir, "forward", cfg.Forward != nil)
	return nil
}

// readToken reads the producers' bearer token, "" without a file.
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("spool token: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("spool token: %s is empty", path)
	}
	return token, nil
}

// bindSpool opens a TCP listener on every address; on any failure it
// closes those it opened and names the address.
func bindSpool(addrs []netip.AddrPort) ([]net.Listener, error) {
	var lns []net.Listener
	for _, ap := range addrs {
		l, err := net.Listen("tcp", ap.String())
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("spool: %w", err)
		}
		lns = append(lns, l)
	}
	return lns, nil
}

// closeAll closes listeners, ignoring errors: used on failed starts.
func closeAll(lns []net.Listener) {
	for _, l := range lns {
		l.Close()
	}
}

// openSpool opens the spool with the configured caps and logs its
// recovery report. It fails when the directory cannot be created or used
// or another process holds its lock.
func openSpool(cfg config.Spool, log *slog.Logger) (*spool.Spool, error) {
	s, rep, err := spool.Open(spool.Options{
		Dir:      cfg.Dir,
		MaxBytes: cfg.MaxBytes,
		MaxAge:   cfg.MaxAge,
		WhenFull: spool.WhenFull(cfg.WhenFull),
	})
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", cfg.Dir, err)
	}
	logRecovery(log, rep)
	return s, nil
}

// logRecovery logs what Open found: a summary, the first events (torn
// tails truncated, damage skipped, segments quarantined) and every loss.
func logRecovery(log *slog.Logger, rep *spool.RecoveryReport) {
	log.Info("spool recovered", "streams", rep.Streams, "segments", rep.Segments,
		"records", rep.Records, "bytes", rep.Bytes, "events", len(rep.Events),
		"losses", len(rep.Losses), "took", rep.Duration)
	for i, ev := range rep.Events {
		if i == recoveryLogLines {
			log.Warn("spool recovery: more events not logged", "count", len(rep.Events)-i)
			break
		}
		log.Warn("spool recovery", "kind", ev.Kind, "stream", ev.Stream, "file", ev.File,
			"offset", ev.Offset, "bytes", ev.Bytes, "detail", ev.Detail)
	}
	for _, l := range rep.Losses {
		log.Warn("spool records lost", "stream", l.Stream, "first_seq", l.First, "last_seq", l.Last, "reason", l.Reason)
	}
}

// startForwarder builds the forwarder from the forward section, runs it
// until ctx ends or stopSpool, registers its metrics and kicks it when a
// VPN interface comes up. It fails when the section is unusable, for
// example a TLS file that cannot be read.
func (d *daemon) startForwarder(ctx context.Context, svc *spoolService, cfg config.Forward, reg *prometheus.Registry) error {
	opts, err := forward.OptionsFromConfig(cfg)
	if err != nil {
		return fmt.Errorf("spool forward: %w", err)
	}
	f, err := forward.New(svc.spool, opts)
	if err != nil {
		return fmt.Errorf("spool forward: %w", err)
	}
	reg.MustRegister(forward.NewCollector(f))
	svc.forwarder, svc.target = f, newForwardTarget(cfg)

	ctx, svc.cancel = context.WithCancel(ctx)
	svc.done.Go(func() {
		if err := f.Run(ctx); err != nil {
			d.log.Error("spool forwarder stopped", "err", err)
		}
	})
	svc.done.Go(func() { logUpstream(ctx, d.log, f) })
	d.enforcer.setOnVPNUp(func() {
		f.Kick()
		time.AfterFunc(vpnSettle, f.Kick)
	})
	return nil
}

// logUpstream logs each change of the forwarder's link state until ctx
// ends: up once, down once with the last error, however often it retries.
func logUpstream(ctx context.Context, log *slog.Logger, f *forward.Forwarder) {
	up := false
	tick := time.NewTicker(upstreamPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st := f.State()
		if st.Up == up {
			continue
		}
		up = st.Up
		if up {
			log.Info("spool upstream up")
		} else {
			log.Warn("spool upstream down", "err", st.LastError, "failures", st.Failures)
		}
	}
}

// spoolMaxRequests bounds the ingest requests served at once, and so the
// memory their bodies take (each up to spool.DefaultMaxRequestBytes).
const spoolMaxRequests = 32

// limitRequests answers 503 to requests beyond max at once.
func limitRequests(next http.Handler, max int) http.Handler {
	slots := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"busy: too many requests at once, retry"}`, http.StatusServiceUnavailable)
		}
	})
}

// serve runs the ingest API on every listener.
func (svc *spoolService) serve(lns []net.Listener, token string, log *slog.Logger) {
	h := limitRequests(spool.NewHandler(svc.spool, spool.HandlerOptions{Token: token}), spoolMaxRequests)
	for _, l := range lns {
		// ReadTimeout bounds a whole request body: a client that stalls
		// cannot hold its buffer (up to 8 MiB) for ever.
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       time.Minute,
		}
		svc.servers = append(svc.servers, srv)
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("spool api stopped", "addr", l.Addr(), "err", err)
			}
		}()
	}
}

// stopSpool ends the ingest API (letting appends under way finish), the
// forwarder, and closes the spool, each step bounded by spoolStopWait.
// Records acknowledged to producers are durable whatever happens here;
// the error reports what could not be closed cleanly.
func (d *daemon) stopSpool() error {
	svc := d.spool
	if svc == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), spoolStopWait)
	defer cancel()

	var errs []error
	for _, srv := range svc.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("spool api: %w", err))
		}
	}
	svc.cancel()
	done := make(chan struct{})
	go func() { svc.done.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, errors.New("spool forwarder did not stop in time"))
	}
	if err := svc.spool.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close spool: %w", err))
	}
	return errors.Join(errs...)
}

// closeSpool is stopSpool for a deferred call: it logs what failed.
func (d *daemon) closeSpool() {
	if err := d.stopSpool(); err != nil {
		d.log.Error("spool not closed cleanly", "err", err)
	}
}
