package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/dnsguard"
	"github.com/edgeward/edgeward/intercept"
	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/netwatch"
)

// cmdRun is the daemon: it enforces the configured policy until SIGINT or
// SIGTERM, reloads the config on SIGHUP, and leaves enforcement in place
// when it exits.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	f := newFlags("run", stderr)
	forceClsact := f.Bool("force-clsact", false, "attach through clsact even where tcx exists (testing)")
	if status, ok := f.parse(args); !ok {
		return status
	}
	// Compiling the policy first proves it fits before the kernel is
	// touched.
	cfg, _, ok := f.loadPolicy(stderr)
	if !ok {
		return exitUsage
	}
	guardDir, guardOff, ok := guardCgroup(cfg, stderr)
	if !ok {
		return exitUsage
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &daemon{
		cfg: cfg, log: log, forceClsact: *forceClsact, stop: cancel, started: time.Now(),
		guardDir: guardDir, guardOff: guardOff,
	}
	if err := d.run(ctx); err != nil {
		log.Error("edgeward stopped", "err", err)
		return exitFailure
	}
	return exitOK
}

// daemon is one run of edgeward run.
type daemon struct {
	cfg         *config.Config
	log         *slog.Logger
	forceClsact bool
	stop        context.CancelFunc // ends run, leaving enforcement in place
	started     time.Time

	loader   *loader.Loader
	enforcer *enforcer
	events   *eventHub
	spool    *spoolService // nil unless spool.listen is set

	reloadMu sync.Mutex // one reload at a time: SIGHUP and the socket

	// The socket guard: the cgroup it covers (paths.cgroup as resolved
	// at start), why it is off when it is, and whether it is attached.
	guardDir      string
	guardOff      error
	guardAttached atomic.Bool

	// For restarting the DNS guard on reload.
	ctx     context.Context
	reg     *prometheus.Registry
	stopDNS func()                          // nil while no guard runs
	guard   atomic.Pointer[dnsguard.Guard]  // the running guard, for status
	queue   atomic.Pointer[intercept.Queue] // transparent mode's queue, for status
	// dnsAudit is set in audit mode: transparent DNS lets everything pass.
	dnsAudit atomic.Bool

	// Outcome of the last reload, for the metrics.
	reloadFailed atomic.Bool
	reloadedAt   atomic.Int64 // Unix seconds
}

func (d *daemon) run(ctx context.Context) error {
	// Bind the metrics address before touching the kernel: a taken port is
	// an error that changes nothing.
	metricsLn, err := net.Listen("tcp", d.cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("listen for metrics: %w", err)
	}
	defer metricsLn.Close()
	controlLn, err := listenControl(d.cfg.Paths.Socket)
	if err != nil {
		return err
	}
	defer controlLn.Close()

	d.loader, err = loader.Open(loader.Options{PinPath: d.cfg.Paths.BPFFS, ForceClsact: d.forceClsact})
	if err != nil {
		return err
	}
	defer d.loader.Close()

	if _, err := d.applyPolicy(d.cfg); err != nil {
		return err
	}
	d.seedFlows()
	d.enforcer = newEnforcer(d.cfg, d.loader, d.log)
	if err := d.enforceExisting(); err != nil {
		return err
	}
	d.attachGuard()
	if err := d.loader.RemoveRetiredPins(); err != nil {
		d.log.Warn("an earlier version's policy maps stay pinned, unused; edgeward unload removes them", "err", err)
	}
	events, err := d.loader.Events()
	if err != nil {
		return err
	}
	defer events.Close()
	d.events = newEventHub(d.log, d.enforcer.name)
	go d.events.run(events)
	go d.events.logSuppressed(ctx, 10*time.Second)

	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(d))
	d.ctx, d.reg = ctx, reg
	d.dnsAudit.Store(d.cfg.Mode == config.ModeAudit)
	if err := d.startDNS(ctx, reg, d.cfg.DNS); err != nil {
		return err
	}
	if err := d.startSpool(ctx, reg); err != nil {
		return err
	}
	defer d.closeSpool()
	d.log.Info("ready", "pins", d.cfg.Paths.BPFFS, "metrics", d.cfg.Metrics.Listen, "socket", d.cfg.Paths.Socket)
	d.notify("READY=1")

	go d.serveMetrics(metricsLn, reg)
	go d.serveControl(controlLn)
	go d.watchInterfaces(ctx)
	d.waitForSignals(ctx)

	d.log.Info("stopping; the pinned policy stays enforced", "pins", d.cfg.Paths.BPFFS)
	d.notify("STOPPING=1")
	return nil
}

// applyPolicy compiles cfg into the next policy generation and switches to
// it. On error the active policy is unchanged.
func (d *daemon) applyPolicy(cfg *config.Config) (uint32, error) {
	maps := d.loader.Maps()
	active, _, err := maps.ActivePolicy()
	if err != nil {
		return 0, err
	}

	p, err := loader.Compile(cfg, max(active.Generation, d.loader.RetiredGeneration())+1)
	if err != nil {
		return 0, fmt.Errorf("compile policy from %s: %w", cfg.File, err)
	}
	if err := d.loader.ApplyPolicy(p); err != nil {
		return 0, err
	}
	d.log.Info("policy applied", "generation", p.Generation, "mode", cfg.Mode,
		"endpoints", len(cfg.Endpoints), "entries", p.Entries(), "capacity", loader.MaxRules)
	return p.Generation, nil
}

// attachGuard attaches the socket guard to paths.cgroup. A guard that is
// off or fails to attach is logged and reported (status, metrics) but
// does not stop the daemon: the interfaces are enforced already, and a
// daemon that exited would only be restarted into the same failure, with
// its DNS guard and spool down.
func (d *daemon) attachGuard() {
	const risk = "processes with CAP_NET_RAW can send around tc egress (PACKET_QDISC_BYPASS, AF_XDP)"
	if d.guardOff != nil {
		d.log.Warn("socket guard off: "+risk, "err", d.guardOff)
		return
	}
	if err := d.loader.AttachSocketGuard(d.guardDir); err != nil {
		d.guardOff = err
		d.log.Error("socket guard not attached: "+risk, "cgroup", d.guardDir, "err", err)
		return
	}
	d.guardAttached.Store(true)
	d.log.Info("socket guard attached", "cgroup", d.guardDir, "hook", loader.GuardSetsockopt)
}

// enforceExisting brings every interface present now to what its role
// needs, before the daemon reports ready; the watch then keeps it so.
func (d *daemon) enforceExisting() error {
	links, err := netwatch.List()
	if err != nil {
		return err
	}
	for _, l := range links {
		d.enforcer.handle(netwatch.Event{Link: l})
	}
	return nil
}

// watchInterfaces feeds interface events to the enforcer, starting over
// (and so resynchronising) when the netlink subscription fails.
func (d *daemon) watchInterfaces(ctx context.Context) {
	for ctx.Err() == nil {
		events := make(chan netwatch.Event)
		watchCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- netwatch.Watch(watchCtx, events) }()

		err := d.consume(watchCtx, events, errc)
		cancel()
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("interface watch failed; starting over", "err", err)
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *daemon) consume(ctx context.Context, events <-chan netwatch.Event, errc <-chan error) error {
	for {
		select {
		case ev := <-events:
			d.enforcer.handle(ev)
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitForSignals reloads on SIGHUP until ctx ends.
func (d *daemon) waitForSignals(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			d.reload()
		}
	}
}

// reload applies the config file again and returns the new generation.
// An invalid config keeps the policy in force and is reported in the log
// and the metrics.
func (d *daemon) reload() (uint32, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()

	gen, err := d.reloadLocked()
	d.reloadFailed.Store(err != nil)
	d.reloadedAt.Store(time.Now().Unix())
	if err != nil {
		d.log.Error("reload failed", "err", err)
	}
	return gen, err
}

func (d *daemon) reloadLocked() (uint32, error) {
	cfg, err := config.Load(d.cfg.File)
	if err != nil {
		return 0, fmt.Errorf("rejected, the previous policy stays in force: %w", err)
	}
	gen, err := d.applyPolicy(cfg)
	if err != nil {
		return 0, fmt.Errorf("rejected, the previous policy stays in force: %w", err)
	}
	old := d.cfg
	if old.Paths != cfg.Paths {
		d.log.Warn("reload: the paths section changed; it takes effect when the daemon restarts",
			"old", old.Paths, "new", cfg.Paths)
		cfg.Paths = old.Paths // what is in effect until then
	}
	d.cfg = cfg
	d.enforcer.setConfig(cfg)
	d.dnsAudit.Store(cfg.Mode == config.ModeAudit)
	if err := d.reloadDNS(old.DNS); err != nil {
		return gen, fmt.Errorf("policy generation %d is in force; %w", gen, err)
	}
	return gen, nil
}

func (d *daemon) serveMetrics(ln net.Listener, reg *prometheus.Registry) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		d.log.Error("metrics server stopped", "err", err)
	}
}
