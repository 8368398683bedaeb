package integration

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// Storm parameters: a million datagrams over ten seconds, from the OT host
// to a denied address, while allowed round trips are timed.
const (
	stormPackets  = 1_000_000
	stormDuration = 10 * time.Second
	roundTrips    = 1000
	roundTripGap  = 2 * time.Millisecond
)

// TestDenyStorm: a storm of denied packets is dropped and counted in full;
// its deny events are either delivered (logged within the log budget, or
// counted as not logged) or counted as lost in the kernel, with nothing
// unaccounted; the log and the daemon's CPU time stay bounded; and allowed
// traffic measured in the same test is not slowed.
func TestDenyStorm(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()
	allowed := hostPort(sb.EndpointHost4, sb.UDPEchoPort)

	quiet := g.timeRoundTrips(allowed)
	before := g.stormLedger()

	stormed := make(chan error, 1)
	go func() { stormed <- g.pacedStorm(sb.OT, hostPort(sb.InternetHost4, 9), stormPackets, stormDuration) }()
	time.Sleep(time.Second)
	during := g.timeRoundTrips(allowed)
	stillStorming := len(stormed) == 0
	if err := <-stormed; err != nil {
		t.Fatal(err)
	}
	if !stillStorming {
		t.Fatal("the storm ended before the round trips measured during it did; the measurement proves nothing")
	}

	after := g.waitLedgerSettled(before, 10*time.Second)
	t.Logf("allowed UDP round trips: quiet median %v p99 %v lost %d; during the storm median %v p99 %v lost %d",
		quiet.median(), quiet.p99(), quiet.lost, during.median(), during.p99(), during.lost)
	t.Logf("storm: %d drops counted, %d events delivered (%d logged, %d not logged), %d lost in the kernel; daemon CPU %v",
		after.drops-before.drops, after.delivered()-before.delivered(), after.logged-before.logged,
		after.suppressed-before.suppressed, after.lost-before.lost, after.cpu-before.cpu)
	checkStorm(t, before, after, quiet, during)
}

func checkStorm(t *testing.T, before, after stormLedger, quiet, during roundTripTimes) {
	t.Helper()
	drops := after.drops - before.drops
	if drops < stormPackets {
		t.Errorf("%d drops counted for a storm of %d denied packets", drops, stormPackets)
	}
	if events := after.delivered() + after.lost - before.delivered() - before.lost; events != drops {
		t.Errorf("%d drops, but %d events delivered or counted lost: every drop must be one or the other", drops, events)
	}
	if after.lost-before.lost < drops/2 {
		t.Errorf("only %d of %d deny events lost to the rate limit: the kernel's budget does not hold", after.lost-before.lost, drops)
	}

	// The log budget: 5 lines/s after a burst of 20, over the storm and
	// the time it took to settle, with room for the lines about what was
	// not logged.
	if logged, most := after.logged-before.logged, uint64(20+5*40); logged > most {
		t.Errorf("a storm of %d drops wrote %d deny log lines, want at most %d", drops, logged, most)
	}
	if cpu := after.cpu - before.cpu; cpu > 2*time.Second {
		t.Errorf("the daemon spent %v of CPU on a %v storm; its work must not grow with the storm", cpu, stormDuration)
	}

	if quiet.lost > 0 || during.lost > 0 {
		t.Errorf("allowed round trips lost: %d quiet, %d during the storm", quiet.lost, during.lost)
	}
	if limit := 3*quiet.median() + 200*time.Microsecond; during.median() > limit {
		t.Errorf("allowed round trips slowed by the storm: median %v, quiet %v (limit %v)", during.median(), quiet.median(), limit)
	}
}

// pacedStorm sends n datagrams from host h to dst, spread evenly over d.
func (g *gateway) pacedStorm(h sb.Host, dst string, n int, d time.Duration) error {
	var conn net.Conn
	err := g.sb.Do(h, func() error {
		var err error
		conn, err = net.Dial("udp", dst)
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()

	const batch = 1000
	payload := []byte("storm")
	began := time.Now()
	for sent := 0; sent < n; sent += batch {
		for range min(batch, n-sent) {
			conn.Write(payload) // a refused datagram is no error here: it was sent
		}
		due := began.Add(time.Duration(int64(d) * int64(sent+batch) / int64(n)))
		time.Sleep(time.Until(due))
	}
	return nil
}

// roundTripTimes are the durations of allowed round trips, and how many
// got no answer within a second.
type roundTripTimes struct {
	rtts []time.Duration
	lost int
}

func (r roundTripTimes) median() time.Duration { return r.quantile(0.5) }
func (r roundTripTimes) p99() time.Duration    { return r.quantile(0.99) }

func (r roundTripTimes) quantile(q float64) time.Duration {
	if len(r.rtts) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(r.rtts))
	return s[int(q*float64(len(s)-1))]
}

// timeRoundTrips times roundTrips UDP echoes from the OT host to addr over
// one socket, one at a time, roundTripGap apart.
func (g *gateway) timeRoundTrips(addr string) roundTripTimes {
	g.t.Helper()
	var conn net.Conn
	err := g.sb.Do(sb.OT, func() error {
		var err error
		conn, err = net.Dial("udp", addr)
		return err
	})
	if err != nil {
		g.t.Fatal(err)
	}
	defer conn.Close()

	var out roundTripTimes
	buf := make([]byte, 64)
	for i := range roundTrips {
		msg := []byte(fmt.Sprintf("rtt %d\n", i))
		began := time.Now()
		conn.SetDeadline(began.Add(time.Second))
		_, werr := conn.Write(msg)
		n, rerr := conn.Read(buf)
		if werr != nil || rerr != nil || string(buf[:n]) != string(msg) {
			out.lost++
		} else {
			out.rtts = append(out.rtts, time.Since(began))
		}
		time.Sleep(roundTripGap)
	}
	return out
}

// stormLedger is what a storm is accounted by.
type stormLedger struct {
	drops      uint64 // every drop the kernel counted, any hook and reason
	lost       uint64 // deny events the kernel did not send
	logged     uint64 // deny log lines of the daemon
	suppressed uint64 // deny events the daemon received but did not log
	cpu        time.Duration
}

func (l stormLedger) delivered() uint64 { return l.logged + l.suppressed }

func (g *gateway) stormLedger() stormLedger {
	g.t.Helper()
	var l stormLedger
	for cell, n := range g.counters() {
		if strings.Contains(cell, "/drop/") {
			l.drops += n
		}
	}

	maps, err := loader.OpenPinned(g.cfg.Paths.BPFFS)
	if err != nil {
		g.t.Fatal(err)
	}
	losses, err := maps.EventLosses()
	maps.Close()
	if err != nil {
		g.t.Fatal(err)
	}
	l.lost = losses.RateLimited + losses.RingFull

	l.logged = uint64(strings.Count(g.daemon.Tail(1_000_000), "msg=deny "))
	l.suppressed = g.metricValue("edgeward_event_log_lines_suppressed_total")
	l.cpu = processCPU(g.t, g.daemon.PID())
	return l
}

// waitLedgerSettled waits until the daemon has read every event the kernel
// sent since before, and returns the ledger then.
func (g *gateway) waitLedgerSettled(before stormLedger, timeout time.Duration) stormLedger {
	g.t.Helper()
	var l stormLedger
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		l = g.stormLedger()
		if l.delivered()+l.lost-before.delivered()-before.lost == l.drops-before.drops {
			return l
		}
	}
	return l
}

// metricValue scrapes the daemon and returns the value of an unlabelled
// metric.
func (g *gateway) metricValue(name string) uint64 {
	g.t.Helper()
	text, err := g.sb.Curl(g.t.Context(), sb.Gateway, "http://127.0.0.1:9470/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		g.t.Fatalf("metric %s not in the scrape", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		g.t.Fatalf("metric %s: %v", name, err)
	}
	return uint64(v)
}

// processCPU is the user and system time a process has used.
func processCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseUint(fields[11], 10, 64)
	stime, _ := strconv.ParseUint(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}
