package dnsguard

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// TestExpiryAndRefresh walks a fake clock through answers with changing
// TTLs: the learned lifetime follows the answer clamped to [min,max],
// never shrinks below what is left, and the reply TTL never exceeds the
// lifetime asked for.
func TestExpiryAndRefresh(t *testing.T) {
	up := startUpstream(t, nil)
	clock := newFakeClock()
	learner := &fakeLearner{}
	r := startGuard(t, testConfig(up.addr, up.addr), Options{Learner: learner, Now: clock.Now})

	steps := []struct {
		advance   time.Duration
		ttl       uint32
		wantLearn time.Duration
		wantTTL   uint32
		wantHeld  int // addresses held for the pattern after the step
	}{
		{0, 300, 300 * time.Second, 300, 1},
		{250 * time.Second, 30, 60 * time.Second, 30, 1},   // 50s left: min 60s wins
		{10 * time.Second, 100, 100 * time.Second, 100, 1}, // refresh extends
		{5 * time.Second, 7200, time.Hour, 3600, 1},        // cut to max, reply too
		{3500 * time.Second, 40, 100 * time.Second, 40, 1}, // 100s left beats 60s
		{3 * time.Hour, 0, time.Minute, 0, 1},              // expired, learned anew
	}
	for i, s := range steps {
		t.Run(fmt.Sprintf("step%d", i), func(t *testing.T) {
			clock.Advance(s.advance)
			up.setAnswer(answerWith(dns.RcodeSuccess, fmt.Sprintf("api.example.com. %d IN A 10.20.0.5", s.ttl)))

			reply, err := r.ask(t, query("api.example.com.", dns.TypeA, 0), false, "")
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			got, _ := learner.take()
			if len(got) != 1 || len(reply.Answer) != 1 {
				t.Fatalf("learned %v, answer %v; want one of each", got, reply.Answer)
			}

			ttl := reply.Answer[0].Header().Ttl
			want := []any{s.wantLearn, s.wantTTL, s.wantHeld}
			gotv := []any{got[0].Expires, ttl, r.g.view.counts(clock.Now())[0]}
			if diff := cmp.Diff(want, gotv); diff != "" {
				t.Errorf("[learned lifetime, reply TTL, held] (-want +got):\n%s", diff)
			}
			if time.Duration(ttl)*time.Second > got[0].Expires {
				t.Errorf("reply TTL %ds exceeds the learned lifetime %s", ttl, got[0].Expires)
			}
		})
	}

	clock.Advance(2 * time.Minute)
	if n := r.g.view.counts(clock.Now())[0]; n != 0 {
		t.Errorf("held after expiry = %d, want 0", n)
	}
}

// TestLearnBeforeRelease holds Learn and checks that the client gets no
// reply until it returns.
func TestLearnBeforeRelease(t *testing.T) {
	up := startUpstream(t, answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 10.20.0.5"))
	learner := &fakeLearner{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	r := startGuard(t, testConfig(up.addr, up.addr), Options{Learner: learner, LearnTimeout: 10 * time.Second})

	type answer struct {
		m   *dns.Msg
		err error
	}
	replies := make(chan answer, 1)
	go func() {
		m, err := r.ask(t, query("api.example.com.", dns.TypeA, 0), false, "")
		replies <- answer{m, err}
	}()

	select {
	case <-learner.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("Learn was not called")
	}
	select {
	case a := <-replies:
		t.Fatalf("client got a reply while Learn was blocked: %v %v", a.m, a.err)
	case <-time.After(300 * time.Millisecond):
	}

	close(learner.release)
	a := <-replies
	if a.err != nil {
		t.Fatalf("query: %v", a.err)
	}
	learned, _ := learner.take()
	got := []any{dns.RcodeToString[a.m.Rcode], len(a.m.Answer), len(learned)}
	if diff := cmp.Diff([]any{"NOERROR", 1, 1}, got); diff != "" {
		t.Errorf("[rcode, records, learned] (-want +got):\n%s", diff)
	}
}

// TestLearnTimeout checks that a learner that never returns fails the
// query closed.
func TestLearnTimeout(t *testing.T) {
	up := startUpstream(t, answerWith(dns.RcodeSuccess, "api.example.com. 300 IN A 10.20.0.5"))
	learner := &fakeLearner{release: make(chan struct{})}
	r := startGuard(t, testConfig(up.addr, up.addr), Options{Learner: learner, LearnTimeout: 100 * time.Millisecond})

	reply, err := r.ask(t, query("api.example.com.", dns.TypeA, 0), false, "")
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if diff := cmp.Diff("SERVFAIL", dns.RcodeToString[reply.Rcode]); diff != "" {
		t.Errorf("rcode (-want +got):\n%s", diff)
	}
	close(learner.release)
}

// TestCapEvictsLeastRecent learns more addresses than the cap allows, and
// checks which ones are forgotten, also after Restore.
func TestCapEvictsLeastRecent(t *testing.T) {
	up := startUpstream(t, nil)
	clock := newFakeClock()
	learner := &fakeLearner{}
	r := startGuard(t, testConfig(up.addr, up.addr), Options{Learner: learner, Now: clock.Now, MaxAddrsPerName: 2})

	kept := r.g.Restore([]Learned{
		learned("10.20.0.2", "api.example.com", 443, 500*time.Second),
		learned("10.20.0.1", "api.example.com", 443, 100*time.Second),
		learned("10.20.0.9", "gone.example.com", 443, 100*time.Second),
		learned("10.20.0.8", "api.example.com", 443, -time.Second),
	})
	if kept != 2 {
		t.Errorf("Restore kept %d, want 2", kept)
	}

	steps := []struct {
		addr       string
		wantLearn  time.Duration
		wantForget []string
	}{
		{"10.20.0.2", 500 * time.Second, nil},                  // restored lifetime is kept
		{"10.20.0.3", 60 * time.Second, []string{"10.20.0.1"}}, // .1 is least recent
		{"10.20.0.2", 500 * time.Second, nil},
		{"10.20.0.4", 60 * time.Second, []string{"10.20.0.3"}},
	}
	for i, s := range steps {
		t.Run(fmt.Sprintf("step%d", i), func(t *testing.T) {
			up.setAnswer(answerWith(dns.RcodeSuccess, "api.example.com. 30 IN A "+s.addr))
			if _, err := r.ask(t, query("api.example.com.", dns.TypeA, 0), false, ""); err != nil {
				t.Fatalf("query: %v", err)
			}

			l, f := learner.take()
			var forgot []string
			for _, e := range f {
				forgot = append(forgot, e.Addr.String())
			}
			got := []any{l[0].Expires, forgot}
			if diff := cmp.Diff([]any{s.wantLearn, s.wantForget}, got); diff != "" {
				t.Errorf("[lifetime, forgotten] (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEventsRateLimited rejects more answers than the event burst and
// checks what the hook saw.
func TestEventsRateLimited(t *testing.T) {
	up := startUpstream(t, answerWith(dns.RcodeSuccess, "api.example.com. 30 IN A 203.0.113.7"))
	clock := newFakeClock()
	events := make(chan Event, 10)
	r := startGuard(t, testConfig(up.addr, up.addr), Options{
		Learner: &fakeLearner{}, Now: clock.Now, EventBurst: 2, EventInterval: time.Second,
		OnEvent: func(e Event) { events <- e },
	})

	for range 5 {
		if _, err := r.ask(t, query("API.example.com.", dns.TypeA, 0), false, ""); err != nil {
			t.Fatalf("query: %v", err)
		}
	}
	clock.Advance(time.Second)
	if _, err := r.ask(t, query("api.example.com.", dns.TypeA, 0), false, ""); err != nil {
		t.Fatalf("query: %v", err)
	}

	var got []Event
	for len(events) > 0 {
		got = append(got, <-events)
	}
	ev := func(name string, suppressed uint64) Event {
		return Event{Reason: ReasonPublicAnswer, Pattern: "api.example.com", Name: name,
			Client: netip.MustParseAddr("127.0.0.1"), Addr: netip.MustParseAddr("203.0.113.7"), Suppressed: suppressed}
	}
	want := []Event{ev("API.example.com.", 0), ev("API.example.com.", 0), ev("api.example.com.", 3)}
	if diff := cmp.Diff(want, got, cmpAddrs); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
