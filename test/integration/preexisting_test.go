package integration

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// ticker writes a numbered line every 100 ms for 10 s.
func ticker(conn net.Conn) {
	for i := range 100 {
		if _, err := fmt.Fprintf(conn, "tick %d\n", i); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOpenConnectionsSurviveStart: connections open before enforcement
// starts go on, whoever speaks first after it: an OT host's connection
// through the gateway's NAT (seeded from connection tracking) and the
// gateway's own (adopted by its socket). A connection the policy does not
// allow is cut.
func TestOpenConnectionsSurviveStart(t *testing.T) {
	g := newGateway(t, demopolicy.Params{Extra: []demopolicy.Endpoint{
		{Name: "ticker", To: []string{sb.EndpointHost4 + "/32"}, Ports: []string{"tcp/9000"}},
	}})
	// NAT on the uplink, as gateways have it: connection tracking runs.
	run(t, "ip", "netns", "exec", g.sb.NetNS(sb.Gateway), "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", sb.GatewayWANIface, "-j", "MASQUERADE")
	g.listenTCP(sb.WAN, sb.Addr(sb.EndpointHost4, 9000), ticker)
	g.listenTCP(sb.WAN, sb.Addr(sb.InternetHost4, 9000), ticker)

	ot := g.openTicker(sb.OT, sb.Addr(sb.EndpointHost4, 9000))
	own := g.openTicker(sb.Gateway, sb.Addr(sb.EndpointHost4, 9000))
	denied := g.openTicker(sb.OT, sb.Addr(sb.InternetHost4, 9000))

	g.start()
	time.Sleep(500 * time.Millisecond) // let in-flight ticks drain
	for _, c := range []struct {
		name    string
		r       *bufio.Reader
		conn    net.Conn
		allowed bool
	}{
		{"OT host's connection through NAT", ot.r, ot.conn, true},
		{"gateway's own connection", own.r, own.conn, true},
		{"OT host's connection to the internet host", denied.r, denied.conn, false},
	} {
		c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		got := 0
		for got < 10 {
			if _, err := c.r.ReadString('\n'); err != nil {
				break
			}
			got++
		}
		if c.allowed && got < 10 {
			t.Errorf("%s: %d ticks in 2 s after enforcement started, want 10", c.name, got)
		}
		if !c.allowed && got >= 10 {
			t.Errorf("%s: still %d ticks after enforcement started, want it cut", c.name, got)
		}
	}
	if log := g.daemon.Tail(50); !strings.Contains(log, "recorded connections open before enforcement") {
		t.Errorf("no connection was seeded from connection tracking:\n%s", log)
	}
}

type tickerConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// openTicker connects from host h and reads the first tick.
func (g *gateway) openTicker(h sb.Host, addr string) tickerConn {
	g.t.Helper()
	conn, err := g.dialTCP(h, addr, 5*time.Second)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { conn.Close() })
	r := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); err != nil {
		g.t.Fatalf("first tick from %s: %v", addr, err)
	}
	return tickerConn{conn, r}
}
