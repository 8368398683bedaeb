package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// greeting is what every test server sends on a new connection.
const greeting = "edgeward kernel matrix"

// How long a connection may take: TCG guests are slow, so an allowed
// connection gets ample time, and a denied one, whose SYN is dropped, is
// given up after a bounded wait.
const (
	allowedTimeout = 10 * time.Second
	deniedTimeout  = 1500 * time.Millisecond
)

// serve listens on a free TCP port of addr in ns and greets every
// connection. The listener closes when the test ends.
func serve(t *testing.T, ns netns.NsHandle, addr netip.Addr) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	var err error
	inNamespace(t, ns, func() {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })

	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed
			}
			fmt.Fprintln(conn, greeting)
			conn.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// expectGreeting connects from ns to addr and reads the server's greeting.
func expectGreeting(t *testing.T, ns netns.NsHandle, addr netip.AddrPort) {
	t.Helper()
	conn, err := dialFrom(t, ns, addr, allowedTimeout)
	if err != nil {
		t.Fatalf("allowed connection to %s: %v", addr, err)
	}
	defer conn.Close()

	conn.SetReadDeadline(time.Now().Add(allowedTimeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read greeting from %s: %v", addr, err)
	}
	if line != greeting+"\n" {
		t.Fatalf("greeting from %s = %q, want %q", addr, line, greeting)
	}
}

// expectDropped connects from ns to addr and wants the attempt to time out:
// a refused or established connection means the SYN got through.
func expectDropped(t *testing.T, ns netns.NsHandle, addr netip.AddrPort) {
	t.Helper()
	conn, err := dialFrom(t, ns, addr, deniedTimeout)
	if err == nil {
		conn.Close()
		t.Fatalf("denied connection to %s was established", addr)
	}
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("denied connection to %s: %v, want a timeout (the SYN must be dropped)", addr, err)
	}
}

// dialFrom opens a TCP connection from ns.
func dialFrom(t *testing.T, ns netns.NsHandle, addr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	var conn net.Conn
	var err error
	inNamespace(t, ns, func() {
		conn, err = net.DialTimeout("tcp", addr.String(), timeout)
	})
	return conn, err
}
