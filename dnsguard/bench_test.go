package dnsguard

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// nopLearner takes every entry at once, so that the benchmark measures
// the guard, not a data plane.
type nopLearner struct{}

// Learn implements Learner.
func (nopLearner) Learn(context.Context, []Learned) error { return nil }

// benchWorkers is the number of concurrent clients, each with its own
// UDP socket.
const benchWorkers = 4

// BenchmarkGuardVsDirect sends b.N A queries over UDP straight to the
// scripted upstream and then b.N through the guard, in the same run, and
// reports both rates and their ratio.
func BenchmarkGuardVsDirect(b *testing.B) {
	up := startUpstream(b, answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 10.20.0.5"))
	r := startGuard(b, testConfig(up.addr, up.addr), Options{Learner: nopLearner{}})

	b.ResetTimer()
	direct := blast(b, up.addr.String())
	guard := blast(b, r.udp)
	b.StopTimer()

	b.ReportMetric(float64(b.N)/direct.Seconds(), "direct-q/s")
	b.ReportMetric(float64(b.N)/guard.Seconds(), "guard-q/s")
	b.ReportMetric(direct.Seconds()/guard.Seconds(), "guard/direct")
}

// blast sends b.N queries to server from benchWorkers clients and returns
// the time they took. Any failed query fails the benchmark.
func blast(b *testing.B, server string) time.Duration {
	b.Helper()
	var left atomic.Int64
	left.Store(int64(b.N))

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, benchWorkers)
	for range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := worker(server, &left); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	close(errs)
	for err := range errs {
		b.Fatalf("query to %s: %v", server, err)
	}
	return elapsed
}

// worker sends queries on one socket until left runs out.
func worker(server string, left *atomic.Int64) error {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	conn, err := c.Dial(server)
	if err != nil {
		return err
	}
	defer conn.Close()

	m := query("api.example.com.", dns.TypeA, 0)
	for left.Add(-1) >= 0 {
		m.Id = dns.Id()
		reply, _, err := c.ExchangeWithConn(m, conn)
		if err != nil {
			return err
		}
		if reply.Rcode != dns.RcodeSuccess || len(reply.Answer) != 1 {
			return errUnexpected(reply)
		}
	}
	return nil
}

// errUnexpected describes a reply the benchmark did not expect.
func errUnexpected(m *dns.Msg) error {
	return &unexpectedReply{m.String()}
}

// unexpectedReply is a reply other than one A record.
type unexpectedReply struct{ msg string }

// Error implements error.
func (e *unexpectedReply) Error() string { return "unexpected reply: " + e.msg }
