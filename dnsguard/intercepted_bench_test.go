package dnsguard

import (
	"context"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkJudgeIntercepted: the guard's share of transparent mode's cost
// per packet, for a query and for an answer that is learned.
func BenchmarkJudgeIntercepted(b *testing.B) {
	up := netip.MustParseAddrPort("10.20.0.2:53")
	client := netip.MustParseAddrPort("10.10.0.2:41000")
	g, err := New(testConfig(up, up), Options{Learner: nopLearner{}})
	if err != nil {
		b.Fatal(err)
	}
	q := query("api.example.com.", dns.TypeA, 1232)
	qb, _ := q.Pack()
	a := q.Copy()
	a.Response, a.Answer = true, mustRRs("api.example.com. 300 IN A 10.20.8.15")
	ab, _ := a.Pack()

	b.Run("query", func(b *testing.B) {
		for range b.N {
			g.JudgeIntercepted(context.Background(), Intercepted{Src: client, Dst: up, Payload: qb})
		}
	})
	b.Run("answer", func(b *testing.B) {
		for range b.N {
			g.JudgeIntercepted(context.Background(), Intercepted{Src: up, Dst: client, Payload: ab})
		}
	})
}
