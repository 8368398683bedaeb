package integration

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	sb "github.com/edgeward/edgeward/test/sandbox"
)

// ipIn runs `ip -n NS args...` in host h's namespace.
func (g *gateway) ipIn(h sb.Host, args ...string) string {
	g.t.Helper()
	return run(g.t, "ip", append([]string{"-n", g.sb.NetNS(h)}, args...)...)
}

// listenTCP serves each connection to addr in host h with handle, until
// the test ends.
func (g *gateway) listenTCP(h sb.Host, addr string, handle func(net.Conn)) {
	g.t.Helper()
	var ln net.Listener
	err := g.sb.Do(h, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { ln.Close() })

	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				handle(conn)
			}()
		}
	}()
}

// dialTCP connects from host h.
func (g *gateway) dialTCP(h sb.Host, addr string, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := g.sb.Do(h, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return conn, err
}

// udpCounter counts the distinct sequence numbers that arrive at addr.
type udpCounter struct {
	pc   net.PacketConn
	mu   sync.Mutex
	seen map[uint32]bool
}

func (g *gateway) countUDP(h sb.Host, addr string) *udpCounter {
	g.t.Helper()
	var pc net.PacketConn
	err := g.sb.Do(h, func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { pc.Close() })

	c := &udpCounter{pc: pc, seen: map[uint32]bool{}}
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 4 {
				c.mu.Lock()
				c.seen[binary.BigEndian.Uint32(buf)] = true
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// close stops counting and frees the address.
func (c *udpCounter) close() { c.pc.Close() }

func (c *udpCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// sendUDP sends n numbered datagrams from host h to each of dsts, one round
// every interval, and returns when done. Send errors (a drop on local
// egress shows as one) are ignored: the counters at the far end judge.
func (g *gateway) sendUDP(h sb.Host, dsts []string, n int, interval time.Duration) {
	g.t.Helper()
	conns := make([]net.Conn, len(dsts))
	err := g.sb.Do(h, func() error {
		for i, dst := range dsts {
			c, err := net.Dial("udp", dst)
			if err != nil {
				return err
			}
			conns[i] = c
		}
		return nil
	})
	if err != nil {
		g.t.Fatal(err)
	}

	payload := make([]byte, 16)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := range n {
		binary.BigEndian.PutUint32(payload, uint32(seq))
		for _, c := range conns {
			c.Write(payload)
		}
		<-tick.C
	}
	for _, c := range conns {
		c.Close()
	}
}

// sink reads everything and answers with the byte count, 8 bytes.
func sink(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	n, _ := io.Copy(io.Discard, conn)
	binary.Write(conn, binary.BigEndian, uint64(n))
}

// source writes size bytes and closes.
func source(size int) func(net.Conn) {
	return func(conn net.Conn) {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		conn.Write(make([]byte, size))
	}
}

// echo copies back what it reads.
func echo(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	io.Copy(conn, conn)
}
