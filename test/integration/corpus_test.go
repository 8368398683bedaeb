package integration

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// icsCorpus is where the ICS captures are: EDGEWARD_ICS_PCAPS, or the
// shared folder beside the repository.
func icsCorpus(t *testing.T) []string {
	t.Helper()
	dir := os.Getenv("EDGEWARD_ICS_PCAPS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus", "ics-pcaps")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.pcap*"))
	if len(files) == 0 {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			t.Skipf("no ICS captures at %s (set EDGEWARD_ICS_PCAPS to their folder)", dir)
		}
		t.Fatalf("no captures in %s", dir)
	}
	return files
}

// routedReasons are the reasons for which xdp_lan hands a packet on to be
// routed out; the OT captures must earn none of them.
var routedReasons = []string{"endpoint", "proxy", "vpn", "learned"}

// TestICSCaptureReplay replays every ICS capture from the OT host into the
// gateway with tcpreplay: every frame is counted by the LAN hook and none
// is let through to be routed out.
func TestICSCaptureReplay(t *testing.T) {
	files := icsCorpus(t)
	g := newGateway(t, demopolicy.Params{})
	g.start()

	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			before := g.counters()
			sent := g.replay(file)
			time.Sleep(50 * time.Millisecond)
			after := g.counters()

			counted := uint64(0)
			for key, n := range after {
				if strings.HasPrefix(key, "xdp_lan/") {
					counted += n - before[key]
				}
			}
			// The OT host's own neighbour discovery may add a packet or two.
			if counted < uint64(sent) || counted > uint64(sent)+4 {
				t.Errorf("tcpreplay sent %d frames, xdp_lan counted %d", sent, counted)
			}
			for _, reason := range routedReasons {
				if key := "xdp_lan/pass/" + reason; after[key] != before[key] {
					t.Errorf("%d frames passed under %s: they would leave", after[key]-before[key], key)
				}
			}
		})
	}
}

var replayed = regexp.MustCompile(`Successful packets:\s+(\d+)`)

// replay sends a capture out of the OT host's interface and returns how
// many frames left it.
func (g *gateway) replay(file string) int {
	g.t.Helper()
	out := run(g.t, "ip", "netns", "exec", g.sb.NetNS(sb.OT), "tcpreplay", "--intf1="+sb.OTIface, "--topspeed", file)
	m := replayed.FindStringSubmatch(out)
	if m == nil {
		g.t.Fatalf("tcpreplay output without a packet count:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
