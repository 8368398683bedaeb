package loader

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// TestDenyEvents: a dropped packet sends one event naming the hook, the
// reason, the policy generation and the addresses; a passed one sends
// none; a storm is cut by the per-CPU budget and the cut is counted.
func TestDenyEvents(t *testing.T) {
	l := openTestLoader(t, testPolicy(config.ModeEnforce))
	rd, err := l.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	runEgress(t, l, false, tcp4(s3v4, 443))
	runEgress(t, l, false, tcp4(inet4, 8443))
	got := readEvent(t, rd)
	want := Event{
		Generation: 1, Hook: HookTCEgress, Verdict: VerdictDrop,
		Reason: got.Reason, Proto: pkt.ProtoTCP,
		Src: gw4, Dst: inet4, SrcPort: 40000, DstPort: 8443,
		Ifindex: got.Ifindex, Since: got.Since,
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if got.Reason.String() != "no_rule" {
		t.Errorf("event reason %s, want no_rule", got.Reason)
	}

	// A storm: far more drops than the budget lets through.
	const storm = 2000
	for range storm {
		runEgress(t, l, false, tcp4(inet4, 8443))
	}
	losses, err := l.Maps().EventLosses()
	if err != nil {
		t.Fatal(err)
	}
	if losses.RateLimited == 0 || losses.RateLimited >= storm {
		t.Errorf("rate-limited events %d of a storm of %d: want most, not all", losses.RateLimited, storm)
	}
}

func readEvent(t *testing.T, rd *EventReader) Event {
	t.Helper()
	type result struct {
		ev  Event
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ev, err := rd.Read()
		ch <- result{ev, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.ev
	case <-time.After(2 * time.Second):
		t.Fatal("no deny event within 2 s")
	}
	return Event{}
}
