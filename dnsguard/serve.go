package dnsguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// shutdownGrace bounds how long Serve waits for queries in flight when
// its context ends.
const shutdownGrace = 3 * time.Second

// handler adapts the guard to miekg/dns for one Serve call.
type handler struct {
	g   *Guard
	ctx context.Context
}

// ServeDNS answers one query and writes the reply, truncated to what a
// UDP client can take.
func (h handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	client := addrOf(w.RemoteAddr())
	_, tcp := w.RemoteAddr().(*net.TCPAddr)

	reply := h.g.resolve(h.ctx, client, req, tcp)
	if !tcp {
		reply.Truncate(clientUDPSize(req))
	}
	_ = w.WriteMsg(reply) // the client went away: nothing to do
}

// addrOf returns the unmapped IP of a socket address, or the zero Addr.
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// clientUDPSize is the reply size a UDP client accepts: its EDNS buffer
// up to upstreamUDPSize, or 512 bytes without EDNS.
func clientUDPSize(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil {
		return min(max(int(opt.UDPSize()), dns.MinMsgSize), upstreamUDPSize)
	}
	return dns.MinMsgSize
}

// Serve answers queries on the given sockets until ctx ends, then stops
// them, waits up to a few seconds for queries in flight and returns nil.
// It takes ownership of the sockets and closes them. It returns an error
// when a socket fails before ctx ends.
func (g *Guard) Serve(ctx context.Context, packet []net.PacketConn, stream []net.Listener) error {
	if len(packet)+len(stream) == 0 {
		return errors.New("dns guard: serve: no sockets")
	}
	h := handler{g: g, ctx: ctx}

	var servers []*dns.Server
	for _, pc := range packet {
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: h, UDPSize: dns.MaxMsgSize})
	}
	for _, l := range stream {
		servers = append(servers, &dns.Server{Listener: l, Handler: h})
	}

	err := runServers(ctx, servers)
	g.fw.pool.closeIdle()
	return err
}

// runServers runs servers until ctx ends or one fails, then shuts all
// of them down.
func runServers(ctx context.Context, servers []*dns.Server) error {
	failed := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, s := range servers {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ActivateAndServe(); err != nil {
				failed <- fmt.Errorf("dns guard: serve on %s: %w", socketName(s), err)
			}
		}()
		select {
		case <-started:
		case err := <-failed:
			failed <- err
		}
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-failed:
	}

	shutdown(servers)
	wg.Wait()
	return err
}

// shutdown stops every server, waiting a bounded time for queries in
// flight. A server that failed to start is skipped.
func shutdown(servers []*dns.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()

	for _, s := range servers {
		if err := s.ShutdownContext(ctx); err != nil {
			closeSocket(s) // never started: release the socket ourselves
		}
	}
}

// closeSocket closes the socket of a server that is not running.
func closeSocket(s *dns.Server) {
	if s.PacketConn != nil {
		s.PacketConn.Close()
	}
	if s.Listener != nil {
		s.Listener.Close()
	}
}

// socketName names the socket of s for errors.
func socketName(s *dns.Server) string {
	if s.PacketConn != nil {
		return "udp " + s.PacketConn.LocalAddr().String()
	}
	return "tcp " + s.Listener.Addr().String()
}

// ListenAndServe opens UDP and TCP sockets on every address of the
// configured listen list (on the same port; a port 0 is chosen for UDP
// and reused for TCP) and serves on them until ctx ends, like Serve. It
// fails when an address cannot be bound; nothing stays open then.
func (g *Guard) ListenAndServe(ctx context.Context, addrs []netip.AddrPort) error {
	var packet []net.PacketConn
	var stream []net.Listener
	for _, ap := range addrs {
		pc, l, err := listenPair(ctx, ap)
		if err != nil {
			closeAll(packet, stream)
			return fmt.Errorf("dns guard: %w", err)
		}
		packet, stream = append(packet, pc), append(stream, l)
	}
	return g.Serve(ctx, packet, stream)
}

// listenPair binds UDP and TCP on ap, TCP on the port UDP got.
func listenPair(ctx context.Context, ap netip.AddrPort) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", ap.String())
	if err != nil {
		return nil, nil, fmt.Errorf("listen udp %s: %w", ap, err)
	}

	port := pc.LocalAddr().(*net.UDPAddr).Port
	tcpAddr := netip.AddrPortFrom(ap.Addr(), uint16(port))
	l, err := lc.Listen(ctx, "tcp", tcpAddr.String())
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("listen tcp %s: %w", tcpAddr, err)
	}
	return pc, l, nil
}

// closeAll closes sockets opened so far.
func closeAll(packet []net.PacketConn, stream []net.Listener) {
	for _, pc := range packet {
		pc.Close()
	}
	for _, l := range stream {
		l.Close()
	}
}
