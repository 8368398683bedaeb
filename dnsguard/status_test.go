package dnsguard

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// upstreamSummary is the part of an UpstreamState that a test can
// predict: which server, how often it answered and failed, and whether
// the times and the error are set.
type upstreamSummary struct {
	Zones              string
	Server             string
	Answers, Failures  uint64
	Answered, Failed   bool
	ErrorNamesTheCause bool
}

func summarize(states []UpstreamState, since time.Time) []upstreamSummary {
	var out []upstreamSummary
	for _, s := range states {
		out = append(out, upstreamSummary{
			Zones: strings.Join(s.Zones, ","), Server: s.Server,
			Answers: s.Answers, Failures: s.Failures,
			Answered:           !s.LastAnswer.Before(since) && !s.LastAnswer.IsZero(),
			Failed:             !s.LastFailure.Before(since) && !s.LastFailure.IsZero(),
			ErrorNamesTheCause: s.Failures > 0 && strings.Contains(s.LastError, s.Server),
		})
	}
	return out
}

// TestUpstreamState: each server's answers and failures are counted with
// the time of the last of each; a silent server fails by timeout and the
// next one of its set answers; SERVFAIL counts as a failure.
func TestUpstreamState(t *testing.T) {
	up := startUpstream(t, answerWith(dns.RcodeSuccess, "api.failover.test. 300 IN A 10.20.0.5"))
	silent := startUpstream(t, nil)
	r := startGuard(t, testConfig(up.addr, silent.addr), Options{
		Learner: &fakeLearner{}, UpstreamTimeout: 200 * time.Millisecond,
	})
	began := time.Now()
	answering, quiet := up.addr.String(), silent.addr.String()

	steps := []struct {
		name  string
		qname string
		rcode int // the upstream's answer
		want  []upstreamSummary
	}{
		{"nothing asked yet", "", 0, []upstreamSummary{
			{Zones: "example.com,x,y", Server: answering},
			{Zones: "failover.test", Server: quiet},
			{Zones: "failover.test", Server: answering},
		}},
		{"silent first, then the next", "api.failover.test.", dns.RcodeSuccess, []upstreamSummary{
			{Zones: "example.com,x,y", Server: answering},
			{Zones: "failover.test", Server: quiet, Failures: 1, Failed: true, ErrorNamesTheCause: true},
			{Zones: "failover.test", Server: answering, Answers: 1, Answered: true},
		}},
		{"servfail", "api.example.com.", dns.RcodeServerFailure, []upstreamSummary{
			{Zones: "example.com,x,y", Server: answering, Failures: 1, Failed: true, ErrorNamesTheCause: true},
			{Zones: "failover.test", Server: quiet, Failures: 1, Failed: true, ErrorNamesTheCause: true},
			{Zones: "failover.test", Server: answering, Answers: 1, Answered: true},
		}},
		{"recovered: the error stays", "api.example.com.", dns.RcodeSuccess, []upstreamSummary{
			{Zones: "example.com,x,y", Server: answering, Answers: 1, Failures: 1, Answered: true, Failed: true, ErrorNamesTheCause: true},
			{Zones: "failover.test", Server: quiet, Failures: 1, Failed: true, ErrorNamesTheCause: true},
			{Zones: "failover.test", Server: answering, Answers: 1, Answered: true},
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.qname != "" {
				up.setAnswer(answerWith(st.rcode, st.qname+" 300 IN A 10.20.0.5"))
				if _, err := r.ask(t, query(st.qname, dns.TypeA, 0), false, ""); err != nil {
					t.Fatalf("query: %v", err)
				}
			}
			if diff := cmp.Diff(st.want, summarize(r.g.Upstreams(), began)); diff != "" {
				t.Errorf("upstream states (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLearnedNames: the guard tells which query name last taught an
// address, in canonical form; an address it does not hold, or that
// expired, is left out; one restored from the data plane has no name.
func TestLearnedNames(t *testing.T) {
	up := startUpstream(t, nil)
	clock := newFakeClock()
	r := startGuard(t, testConfig(up.addr, up.addr), Options{Learner: &fakeLearner{}, Now: clock.Now})
	shared, restored, unknown := netip.MustParseAddr("10.30.0.7"), netip.MustParseAddr("10.30.0.8"), netip.MustParseAddr("10.30.0.9")
	api := netip.MustParseAddr("10.20.0.5")

	for _, a := range []struct{ name, record string }{
		{"API.Example.com.", "api.example.com. 60 IN A 10.20.0.5"},
		{"a.x.", "a.x. 300 IN A 10.30.0.7"},
		{"Deep.B.y.", "deep.b.y. 300 IN A 10.30.0.7"}, // another pattern, same address
	} {
		up.setAnswer(answerWith(dns.RcodeSuccess, a.record))
		if reply, err := r.ask(t, query(a.name, dns.TypeA, 0), false, ""); err != nil || len(reply.Answer) != 1 {
			t.Fatalf("query %s: %v %v", a.name, err, reply)
		}
	}
	r.g.Restore([]Learned{learned("10.30.0.8", "*.x", 8883, time.Hour)})

	all := []netip.Addr{api, shared, restored, unknown}
	want := map[netip.Addr]string{api: "api.example.com", shared: "deep.b.y", restored: ""}
	if diff := cmp.Diff(want, r.g.LearnedNames(all)); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}

	clock.Advance(2 * time.Minute) // past the 60 s of api.example.com
	delete(want, api)
	if diff := cmp.Diff(want, r.g.LearnedNames(all)); diff != "" {
		t.Errorf("names after api.example.com expired (-want +got):\n%s", diff)
	}
}
