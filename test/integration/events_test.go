package integration

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// TestDenyEvents: `edgeward events` follows the drops live, each with hook,
// reason and policy generation. TestDenyStorm covers storms.
func TestDenyEvents(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	follow := g.sb.Command(ctx, sb.Gateway, edgewardBin, "events", "-c", g.cfgPath, "-hook", "xdp_lan", "-reason", "no_rule", "-n", "2")
	out := &strings.Builder{}
	follow.Stdout = out
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let it subscribe
	g.storm(sb.OT, sb.Addr(sb.InternetHost4, 9), 5)
	if err := follow.Wait(); err != nil {
		t.Fatalf("edgeward events: %v\n%s", err, out)
	}
	checkEvents(t, out.String())
}

func checkEvents(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 events, got %d:\n%s", len(lines), out)
	}
	for _, line := range lines {
		var ev struct {
			Hook, Reason, Dst, Interface string
			Generation                   uint32
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		if ev.Hook != "xdp_lan" || ev.Reason != "no_rule" || ev.Generation != 1 || ev.Dst != sb.InternetHost4 || ev.Interface != sb.GatewayLANIface {
			t.Errorf("event %+v: want xdp_lan, no_rule, generation 1, to %s on %s", ev, sb.InternetHost4, sb.GatewayLANIface)
		}
	}
}

// storm sends n datagrams from host h to dst as fast as it can.
func (g *gateway) storm(h sb.Host, dst string, n int) {
	g.t.Helper()
	err := g.sb.Do(h, func() error {
		conn, err := net.Dial("udp", dst)
		if err != nil {
			return err
		}
		defer conn.Close()
		for range n {
			conn.Write([]byte("storm"))
		}
		return nil
	})
	if err != nil {
		g.t.Fatal(err)
	}
}
