package forward

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeward/edgeward/spool"
)

// drainRecords is the backlog of the drain measurement.
const drainRecords = 100_000

// drainResult is one measurement: the forwarder draining a spool backlog
// and, as the floor, a bare paho client publishing the same envelopes
// with QoS 1 in the same windows, to the same broker, in the same run.
type drainResult struct {
	records           int
	forwarder, direct time.Duration
}

func (r drainResult) String() string {
	fw := float64(r.records) / r.forwarder.Seconds()
	bare := float64(r.records) / r.direct.Seconds()
	return fmt.Sprintf("drain %d records of 200 B over TLS to local mosquitto: bare paho %.0f records/s, forwarder %.0f records/s, ratio %.2f",
		r.records, bare, fw, fw/bare)
}

// measureDrain runs both sides once.
func measureDrain(tb testing.TB, n int) drainResult {
	pki := newPKI(tb)
	b := startBrokerLogging(tb, pki, "error")
	opts := Options{URL: b.url(), Topic: "bench/{stream}", TLS: pki.clientTLS(tb), ClientID: "gw-bench"}

	direct := publishDirect(tb, b, opts, n)

	s, _, err := spool.Open(spool.Options{Dir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	fillBacklog(tb, s, n)
	return drainResult{records: n, forwarder: drainSpool(tb, s, opts, n), direct: direct}
}

// payload returns a 200-byte JSON record.
func payload(i int) []byte {
	head := fmt.Sprintf(`{"n":%d,"pad":"`, i)
	return []byte(head + strings.Repeat("x", 200-len(head)-2) + `"}`)
}

// fillBacklog appends n records in appends of 1000.
func fillBacklog(tb testing.TB, s *spool.Spool, n int) {
	for i := 0; i < n; i += 1000 {
		recs := make([][]byte, 0, 1000)
		for j := i; j < min(n, i+1000); j++ {
			recs = append(recs, payload(j))
		}
		if _, _, err := s.Append(context.Background(), "line1", recs...); err != nil {
			tb.Fatal(err)
		}
	}
}

// drainSpool runs a forwarder until the backlog is acknowledged.
func drainSpool(tb testing.TB, s *spool.Spool, opts Options, n int) time.Duration {
	f, err := New(s, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)

	start := time.Now()
	go func() { done <- f.Run(ctx) }()
	for i := 0; !drained(s, "line1", uint64(n)); i++ {
		if i > 12000 {
			tb.Fatalf("not drained after 2 minutes: %+v", f.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)

	cancel()
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	return elapsed
}

// publishDirect publishes n envelopes with a bare paho client, waiting
// for the PUBACKs of each window of BatchRecords like the forwarder.
func publishDirect(tb testing.TB, b *broker, opts Options, n int) time.Duration {
	o := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", b.port)).
		SetClientID("bare-bench").SetTLSConfig(opts.TLS).SetAutoReconnect(false)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)

	start := time.Now()
	toks := make([]mqtt.Token, 0, DefaultBatchRecords)
	for i := 0; i < n; i += DefaultBatchRecords {
		toks = toks[:0]
		for j := i; j < min(n, i+DefaultBatchRecords); j++ {
			rec := spool.Record{Stream: "line1", Seq: uint64(j + 1), Time: start, Data: payload(j)}
			toks = append(toks, c.Publish("bench/line1", 1, false, envelope(rec, "")))
		}
		for _, tok := range toks {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				tb.Fatalf("publish: %v", tok.Error())
			}
		}
	}
	return time.Since(start)
}

// TestDrainRate logs the drain rate of a 100,000-record backlog next to
// its floor. It checks nothing but completion; -short skips it.
func TestDrainRate(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	t.Log(measureDrain(t, drainRecords))
}

// BenchmarkDrain reports the same figures as metrics.
func BenchmarkDrain(b *testing.B) {
	for b.Loop() {
		r := measureDrain(b, drainRecords)
		b.ReportMetric(float64(r.records)/r.forwarder.Seconds(), "records/s")
		b.ReportMetric(float64(r.records)/r.direct.Seconds(), "bare-records/s")
	}
}
