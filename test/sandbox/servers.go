package sandbox

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// echoIdle is how long an echo connection may stay silent before the
// server drops it.
const echoIdle = 2 * time.Minute

// httpsSite is an HTTPS server answering on several addresses of a host.
type httpsSite struct {
	host  Host
	name  string
	addrs []string
}

// echoSite is a TCP or UDP echo on one address of a host.
type echoSite struct {
	host    Host
	network string
	addr    string
}

// httpsSites are the HTTPS servers every sandbox starts.
var httpsSites = []httpsSite{
	{WAN, InternetHostName, []string{InternetHost4, InternetHost6}},
	{WAN, EndpointHostName, []string{EndpointHost4, EndpointHost6}},
	{VPC, VPCEndpointName, []string{VPCEndpoint4, VPCEndpoint6}},
}

// echoSites are the echo servers every sandbox starts.
var echoSites = []echoSite{
	{WAN, "tcp", Addr(EndpointHost4, UnlistedPort)},
	{WAN, "tcp", Addr(EndpointHost6, UnlistedPort)},
	{VPC, "tcp", Addr(VPCEndpoint4, MQTTSPort)},
	{VPC, "tcp", Addr(VPCEndpoint6, MQTTSPort)},
	{WAN, "udp", Addr(InternetHost4, UDPEchoPort)},
	{WAN, "udp", Addr(InternetHost6, UDPEchoPort)},
	{WAN, "udp", Addr(EndpointHost4, UDPEchoPort)},
	{WAN, "udp", Addr(EndpointHost6, UDPEchoPort)},
	{VPC, "udp", Addr(VPCEndpoint4, UDPEchoPort)},
	{VPC, "udp", Addr(VPCEndpoint6, UDPEchoPort)},
}

// servers tracks the in-process servers so Close can end them: the
// listeners, the live TCP connections and the goroutines.
type servers struct {
	mu      sync.Mutex
	closers []io.Closer
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// track registers something to close on shutdown.
func (sv *servers) track(c io.Closer) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	sv.closers = append(sv.closers, c)
}

// shutdown closes every listener and connection and waits for the
// serving goroutines to end.
func (sv *servers) shutdown() error {
	sv.mu.Lock()
	var errs []error
	for _, c := range sv.closers {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range sv.conns {
		c.Close()
	}
	sv.closers, sv.conns = nil, nil
	sv.mu.Unlock()

	sv.wg.Wait()
	return errors.Join(errs...)
}

// startServers starts the HTTPS and echo servers of the topology.
func (s *Sandbox) startServers() error {
	for _, site := range httpsSites {
		for _, ip := range site.addrs {
			if err := s.ListenHTTPS(site.host, Addr(ip, HTTPSPort), site.name); err != nil {
				return err
			}
		}
	}

	for _, e := range echoSites {
		listen := s.ListenTCPEcho
		if e.network == "udp" {
			listen = s.ListenUDPEcho
		}
		if err := listen(e.host, e.addr); err != nil {
			return err
		}
	}
	return nil
}

// ListenHTTPS serves HTTPS on addr ("ip:port") in host h's namespace
// with a certificate from the sandbox CA for that IP. Every request gets
// 200 and the body "<name> <local address>\n". It fails when the address
// is not on an interface of h or the port is taken.
func (s *Sandbox) ListenHTTPS(h Host, addr, name string) error {
	return s.serveHTTPS(h, addr, name, greeter(name))
}

// serveHTTPS serves handler on addr in host h's namespace until the
// sandbox closes, with a certificate from the sandbox CA named name for
// the address's IP.
func (s *Sandbox) serveHTTPS(h Host, addr, name string, handler http.Handler) error {
	ip, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("https %s: %w", addr, err)
	}
	cert, err := s.ca.issue(name, ip)
	if err != nil {
		return fmt.Errorf("https %s: %w", addr, err)
	}

	ln, err := s.listen(h, "tcp", addr)
	if err != nil {
		return err
	}

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
	}
	s.srv.track(ln)
	s.srv.track(srv)
	s.srv.wg.Go(func() { _ = srv.ServeTLS(ln, "", "") })
	return nil
}

// greeter answers every request with the server's name and address.
func greeter(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %v\n", name, local)
	})
}

// ListenTCPEcho serves a TCP echo on addr ("ip:port") in host h's
// namespace: every byte received is sent back, until the peer closes or
// stays silent for 2 minutes. It fails when the address is not on an
// interface of h or the port is taken.
func (s *Sandbox) ListenTCPEcho(h Host, addr string) error {
	ln, err := s.listen(h, "tcp", addr)
	if err != nil {
		return err
	}

	s.srv.track(ln)
	s.srv.wg.Go(func() { s.srv.acceptEcho(ln) })
	return nil
}

// acceptEcho accepts connections until the listener closes.
func (sv *servers) acceptEcho(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		if !sv.adopt(conn) {
			conn.Close()
			return
		}
		sv.wg.Go(func() { sv.echo(conn) })
	}
}

// adopt registers a live connection; it refuses after shutdown.
func (sv *servers) adopt(conn net.Conn) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.conns == nil {
		return false
	}
	sv.conns[conn] = struct{}{}
	return true
}

// echo copies a connection back to itself.
func (sv *servers) echo(conn net.Conn) {
	defer func() {
		sv.mu.Lock()
		delete(sv.conns, conn)
		sv.mu.Unlock()
		conn.Close()
	}()

	buf := make([]byte, 32*1024)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(echoIdle))
		n, err := conn.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ListenUDPEcho serves a UDP echo on addr ("ip:port") in host h's
// namespace: every datagram goes back to its sender. It fails when the
// address is not on an interface of h or the port is taken.
func (s *Sandbox) ListenUDPEcho(h Host, addr string) error {
	var pc net.PacketConn
	err := s.Do(h, func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	if err != nil {
		return fmt.Errorf("udp echo on %s in %s: %w", addr, h, err)
	}

	s.srv.track(pc)
	s.srv.wg.Go(func() { echoDatagrams(pc) })
	return nil
}

// echoDatagrams sends every datagram back until the socket closes.
func echoDatagrams(pc net.PacketConn) {
	buf := make([]byte, 64*1024)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// listen opens a stream listener in host h's namespace.
func (s *Sandbox) listen(h Host, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := s.Do(h, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, h, err)
	}
	return ln, nil
}
