package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/dnsguard"
	"github.com/edgeward/edgeward/intercept"
	"github.com/edgeward/edgeward/loader"
)

// kernelLearner hands the DNS guard's learned destinations to the data
// plane: the door between dnsguard and loader.
type kernelLearner struct {
	loader *loader.Loader
	names  map[string]uint16 // allowlist pattern -> index in dns.names
}

func newKernelLearner(l *loader.Loader, cfg config.DNS) *kernelLearner {
	k := &kernelLearner{loader: l, names: map[string]uint16{}}
	for i, n := range cfg.Names {
		k.names[n.Match] = uint16(i)
	}
	return k
}

// Learn writes the entries; the map update is done when it returns.
func (k *kernelLearner) Learn(_ context.Context, entries []dnsguard.Learned) error {
	dests := make([]loader.LearnedDest, len(entries))
	for i, e := range entries {
		dests[i] = loader.LearnedDest{Addr: e.Addr, Ports: e.Ports, Lifetime: e.Expires, Name: k.names[e.Name]}
	}
	return k.loader.Learn(dests)
}

// Forget removes entries the guard evicted.
func (k *kernelLearner) Forget(_ context.Context, entries []dnsguard.Learned) error {
	addrs := make([]netip.Addr, len(entries))
	for i, e := range entries {
		addrs[i] = e.Addr
	}
	return k.loader.Forget(addrs)
}

// restore reads what the kernel still holds, for the guard's view.
func (k *kernelLearner) restore(cfg config.DNS) ([]dnsguard.Learned, error) {
	dests, err := k.loader.LearnedDests()
	if err != nil {
		return nil, err
	}
	out := make([]dnsguard.Learned, 0, len(dests))
	for _, d := range dests {
		if int(d.Name) >= len(cfg.Names) {
			continue // taught by a name no longer on the list
		}
		out = append(out, dnsguard.Learned{Addr: d.Addr, Ports: d.Ports, Expires: d.Lifetime, Name: cfg.Names[d.Name].Match})
	}
	return out, nil
}

// startDNS starts the DNS guard when the config has dns.listen or
// dns.transparent. It binds every listen address first, so a taken port
// fails the start; in transparent mode it installs the netfilter rules and
// binds the queue.
func (d *daemon) startDNS(ctx context.Context, reg *prometheus.Registry, cfg config.DNS) error {
	if len(cfg.Listen) == 0 && !cfg.Transparent {
		// No guard: rules an earlier transparent mode left would drop all
		// DNS, with no reader for their queue.
		if err := intercept.Remove(); err != nil {
			d.log.Warn("could not remove the rules of an earlier transparent mode", "err", err)
		}
		return nil
	}
	lans := d.lanPrefixes()
	learner := newKernelLearner(d.loader, cfg)
	opts := dnsguard.Options{
		Learner:     learner,
		LANPrefixes: lans,
		AllowClient: func(a netip.Addr) bool { return allowDNSClient(a, lans) },
		OnEvent:     func(ev dnsguard.Event) { logDNSEvent(d.log, ev) },
	}
	if cfg.Transparent {
		opts.SocketControl = intercept.MarkSocket
	}
	g, err := dnsguard.New(cfg, opts)
	if err != nil {
		return err
	}

	restored, err := learner.restore(cfg)
	if err != nil {
		return err
	}
	kept := g.Restore(restored)

	packet, stream, err := bindDNS(cfg.Listen, cfg.Transparent)
	if err != nil {
		return err
	}
	queue, err := d.startIntercept(cfg, g)
	if err != nil {
		closeDNS(packet, stream)
		return err
	}
	collectors := []prometheus.Collector{dnsguard.NewCollector(g)}
	if queue != nil {
		collectors = append(collectors, intercept.NewCollector(queue))
	}
	for _, c := range collectors {
		reg.MustRegister(c)
	}

	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if len(cfg.Listen) == 0 { // transparent only: the queue is all
			<-ctx.Done()
			return
		}
		if err := g.Serve(ctx, packet, stream); err != nil {
			d.log.Error("dns guard stopped", "err", err)
		}
	}()
	d.guard.Store(g)
	d.queue.Store(queue)
	d.stopDNS = func() {
		d.guard.Store(nil)
		d.queue.Store(nil)
		if queue != nil {
			queue.Close() // the rules stay: queued DNS is dropped until a reader binds
		}
		cancel()
		<-done
		for _, c := range collectors {
			reg.Unregister(c)
		}
	}
	d.log.Info("dns guard started", "listen", len(cfg.Listen), "transparent", cfg.Transparent,
		"names", len(cfg.Names), "restored", kept)
	return nil
}

// rulesCheckInterval is how often the daemon makes sure the transparent
// mode's rules are still in place.
const rulesCheckInterval = 2 * time.Second

// startIntercept installs the transparent mode's rules and binds its queue
// to g, or, without transparent mode, removes rules a previous config
// left. The rules go in first: until the queue is bound, what they queue
// is dropped, never let through.
func (d *daemon) startIntercept(cfg config.DNS, g *dnsguard.Guard) (*intercept.Queue, error) {
	if !cfg.Transparent {
		if err := intercept.Remove(); err != nil {
			d.log.Warn("could not remove the rules of an earlier transparent mode", "err", err)
		}
		return nil, nil
	}
	// The queue first: rules that pointed at a number another program
	// reads would hand it every DNS packet.
	q, err := intercept.Open(cfg.Queue.Number, cfg.Queue.Length, d.judgeIntercepted(g), d.enforcer.isLAN, d.log)
	if err != nil {
		return nil, err
	}
	if err := intercept.Install(cfg.Queue.Number); err != nil {
		q.Close()
		return nil, err
	}
	q.KeepRules(rulesCheckInterval)
	d.log.Info("transparent dns: rules installed, queue bound", "queue", cfg.Queue.Number, "length", cfg.Queue.Length)
	return q, nil
}

// judgeIntercepted is g's judgement of intercepted DNS under the policy's
// mode: in audit mode every packet passes, judged, learned and counted as
// it would be, as the data plane passes what it would drop.
func (d *daemon) judgeIntercepted(g *dnsguard.Guard) intercept.Judge {
	return func(ctx context.Context, p dnsguard.Intercepted) dnsguard.InterceptVerdict {
		v := g.JudgeIntercepted(ctx, p)
		if d.dnsAudit.Load() {
			v.Accept = true
		}
		return v
	}
}

// closeDNS closes sockets bindDNS opened.
func closeDNS(packet []net.PacketConn, stream []net.Listener) {
	for _, p := range packet {
		p.Close()
	}
	closeAll(stream)
}

// bindDNS opens UDP and TCP on every address. With marked set (transparent
// mode) the sockets carry the guard's mark, so its replies, even to a
// client that asked from port 53, pass the rules unqueued.
func bindDNS(addrs []netip.AddrPort, marked bool) ([]net.PacketConn, []net.Listener, error) {
	var lc net.ListenConfig
	if marked {
		lc.Control = intercept.MarkSocket
	}
	var packet []net.PacketConn
	var stream []net.Listener
	fail := func(err error) ([]net.PacketConn, []net.Listener, error) {
		closeDNS(packet, stream)
		return nil, nil, fmt.Errorf("dns guard: %w", err)
	}
	for _, ap := range addrs {
		pc, err := lc.ListenPacket(context.Background(), "udp", ap.String())
		if err != nil {
			return fail(err)
		}
		packet = append(packet, pc)
		l, err := lc.Listen(context.Background(), "tcp", ap.String())
		if err != nil {
			return fail(err)
		}
		stream = append(stream, l)
	}
	return packet, stream, nil
}

// lanPrefixes are the subnets of the LAN interfaces as they are now.
func (d *daemon) lanPrefixes() []netip.Prefix {
	var out []netip.Prefix
	links, _ := d.enforcer.snapshot()
	for _, st := range links {
		if st.role != config.RoleLAN {
			continue
		}
		lk, err := netlink.LinkByIndex(st.link.Index)
		if err != nil {
			continue
		}
		addrs, _ := netlink.AddrList(lk, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if p, ok := netip.AddrFromSlice(a.IP); ok {
				ones, _ := a.Mask.Size()
				out = append(out, netip.PrefixFrom(p.Unmap(), ones).Masked())
			}
		}
	}
	return out
}

// allowDNSClient lets the gateway itself and hosts on LAN subnets use the
// guard: it is not an open resolver.
func allowDNSClient(a netip.Addr, lans []netip.Prefix) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range lans {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func logDNSEvent(log *slog.Logger, ev dnsguard.Event) {
	log.Warn("dns answer rejected", "reason", ev.Reason, "pattern", ev.Pattern, "name", ev.Name,
		"client", ev.Client, "addr", ev.Addr, "err", ev.Err, "suppressed_before", ev.Suppressed)
}

// reloadDNS restarts the guard when the dns section changed: the old guard
// stops (its sockets close), the new one binds and serves. Learned entries
// stay in the kernel and the new guard restores them. Queries that arrive
// in between get no answer and are retried by their clients.
func (d *daemon) reloadDNS(old config.DNS) error {
	if reflect.DeepEqual(old, d.cfg.DNS) {
		return nil
	}
	if d.stopDNS != nil {
		d.stopDNS()
		d.stopDNS = nil
	}
	err := d.startDNS(d.ctx, d.reg, d.cfg.DNS)
	if err == nil {
		d.log.Info("dns guard restarted with the new dns section")
		return nil
	}

	// Back to the section that worked, so that DNS is served as before.
	d.cfg.DNS = old
	if rerr := d.startDNS(d.ctx, d.reg, old); rerr != nil {
		return fmt.Errorf("the new dns section failed (%w), and so did the previous one: %v; the DNS guard is down", err, rerr)
	}
	return fmt.Errorf("the new dns section failed, the DNS guard runs with the previous one: %w", err)
}
