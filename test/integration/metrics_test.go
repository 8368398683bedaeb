package integration

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/edgeward/edgeward/internal/metrictest"
	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

var updateGolden = flag.Bool("update", false, "rewrite deploy/metrics.golden from the live scrape of TestGoldenScrape")

// goldenScrape is the committed scrape that make check lints and checks
// the README, the dashboard and the alert rules against.
const goldenScrape = "../../deploy/metrics.golden"

// goldenHeader opens the golden file; the text format ignores comments.
const goldenHeader = `# A scrape of edgeward run with policy, DNS guard, spool and MQTT forwarder,
# after allowed and denied traffic, DNS queries and a spool record. Values are
# from one run; families, types and label names are what tests rely on.
# Rewrite: go test -count=1 -run TestGoldenScrape ./test/integration/ -update
`

// TestGoldenScrape: a daemon with every part enabled, after some traffic,
// serves exactly the metric families of deploy/metrics.golden, with the
// same types and label names. With -update it rewrites the file instead.
// Then the tunnel's link state shows in edgeward_interfaces_up.
func TestGoldenScrape(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	inbox := startFullGateway(t, g)
	makeTraffic(t, g, inbox)
	scrape := g.scrape(t)

	if *updateGolden {
		if err := os.WriteFile(goldenScrape, []byte(goldenHeader+scrape), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenScrape)
	} else {
		compareWithGolden(t, scrape)
	}

	checkTunnelState(t, g)
}

// startFullGateway starts the daemon under the demo policy with
// transparent DNS and a spool that forwards over the tunnel to mosquitto
// in the VPC, and returns
// what the broker receives.
func startFullGateway(t *testing.T, g *gateway) *sb.Inbox {
	t.Helper()
	return startWithBroker(t, g, demopolicy.Params{Transparent: true}).Inbox
}

// makeTraffic makes every part count something: an allowed and a denied
// connection, an allowed, a refused and a rejected DNS query, and a spool
// record that reaches the broker.
func makeTraffic(t *testing.T, g *gateway, inbox *sb.Inbox) {
	t.Helper()
	g.expect([]probe{
		{"endpoint", sb.OT, "https", httpsURL(sb.EndpointHost4), true},
		{"internet host", sb.OT, "https", httpsURL(sb.InternetHost4), false},
	})
	for name, rcode := range map[string]int{
		"h1.partner.test":    dns.RcodeSuccess,
		"evil.example.test":  dns.RcodeRefused,
		"spoof.partner.test": dns.RcodeServerFailure,
	} {
		resp, err := g.sb.Resolve(sb.OT, name)
		if err != nil || resp.Rcode != rcode {
			t.Errorf("resolve %s: rcode %v (%v), want %s", name, rcodeOf(resp), err, dns.RcodeToString[rcode])
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sb.PostRecord(ctx, g.sb.HTTPClient(sb.OT, 5*time.Second), spoolAPI, "line1", `{"t":21.5}`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "spool record at the broker", func() bool { return len(inbox.Deliveries()) >= 1 })
}

// scrape reads the daemon's metrics endpoint inside the gateway.
func (g *gateway) scrape(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := g.sb.Curl(ctx, sb.Gateway, "http://127.0.0.1:9470/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sampleValue returns the value of one series (name{labels} as the
// endpoint writes it) in a scrape, -1 when the scrape lacks it.
func sampleValue(scrape, series string) float64 {
	for _, line := range strings.Split(scrape, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			return -1
		}
		return v
	}
	return -1
}

// compareWithGolden fails when the live scrape's families, types or label
// names differ from the golden file's.
func compareWithGolden(t *testing.T, scrape string) {
	t.Helper()
	golden, err := os.ReadFile(goldenScrape)
	if err != nil {
		t.Fatal(err)
	}
	want, err := metrictest.ParseScrape(bytes.NewReader(golden))
	if err != nil {
		t.Fatalf("%s: %v", goldenScrape, err)
	}
	got, err := metrictest.ParseScrape(strings.NewReader(scrape))
	if err != nil {
		t.Fatalf("live scrape: %v", err)
	}
	if diff := cmp.Diff(metrictest.Shapes(want), metrictest.Shapes(got)); diff != "" {
		t.Errorf("metric families differ from %s (-golden +live); if intended, rerun with -update "+
			"and update the README, the dashboard and the alerts:\n%s", goldenScrape, diff)
	}
}

// checkTunnelState takes the WireGuard interface down and up again and
// expects edgeward_interfaces_up{role="vpn"} to follow.
func checkTunnelState(t *testing.T, g *gateway) {
	t.Helper()
	vpnUp := func(n int) func() bool {
		line := fmt.Sprintf(`edgeward_interfaces_up{role="vpn"} %d`, n)
		return func() bool { return strings.Contains(g.scrape(t), line) }
	}
	waitUntil(t, 5*time.Second, "vpn interface up in the metrics", vpnUp(1))

	if err := g.sb.SetTunnelDown(true); err != nil {
		t.Fatal(err)
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			_ = g.sb.SetTunnelDown(false)
		}
	})
	waitUntil(t, 5*time.Second, "vpn interface down in the metrics", vpnUp(0))

	if err := g.sb.SetTunnelDown(false); err != nil {
		t.Fatal(err)
	}
	restored = true
	waitUntil(t, 5*time.Second, "vpn interface up again in the metrics", vpnUp(1))
}
