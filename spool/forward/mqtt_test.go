package forward

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMQTT forwards two streams over TLS with a client certificate to a
// real mosquitto, directly and through tinyproxy, and reads them back
// with an independent subscriber.
func TestMQTT(t *testing.T) {
	for _, viaProxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("proxy=%v", viaProxy), func(t *testing.T) {
			pki := newPKI(t)
			b := startBroker(t, pki)
			in := &inbox{}
			subscribe(t, b, pki, "plant/#", in)

			opts := Options{URL: b.url(), Topic: "plant/{stream}", TLS: pki.clientTLS(t),
				ClientID: "gw-test", BatchRecords: 50, Backoff: fastBackoff}
			var px *proxy
			if viaProxy {
				px = startProxy(t, b.port)
				opts.Proxy = px.url
			}

			s := openSpool(t)
			appendRecords(t, s, "line1", 1, 200)
			appendRecords(t, s, "line2", 1, 120)
			f := newForwarder(t, s, opts)
			runForwarder(t, f)
			appendRecords(t, s, "line1", 201, 100)

			eventually(t, 20*time.Second, "all records", func() bool { return in.count() >= 420 })
			eventually(t, 5*time.Second, "acks", func() bool { return drained(s, "line1", 300) && drained(s, "line2", 120) })

			want := map[string][]uint64{"line1": upTo(300), "line2": upTo(120)}
			if diff := cmp.Diff(want, in.seqs()); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
			in.checkRecords(t)
			if diff := cmp.Diff(map[string]string{"line1": "plant/line1", "line2": "plant/line2"}, in.from); diff != "" {
				t.Errorf("topics (-want +got):\n%s", diff)
			}

			st := f.State()
			if !st.Up || st.LastSuccess.IsZero() || st.LastError != "" {
				t.Errorf("state %+v, want up, a success and no error", st)
			}
			if viaProxy && px.connects() == 0 {
				t.Errorf("tinyproxy logged no request")
			}
		})
	}
}

// TestMQTTProxyRefuses checks that a proxy refusing the broker's port is
// reported in the state, with nothing acknowledged.
func TestMQTTProxyRefuses(t *testing.T) {
	pki := newPKI(t)
	b := startBroker(t, pki)
	px := startProxy(t, b.port+1)

	s := openSpool(t)
	appendRecords(t, s, "line1", 1, 5)
	f := newForwarder(t, s, Options{URL: b.url(), Topic: "t/{stream}", Proxy: px.url,
		TLS: pki.clientTLS(t), ClientID: "gw-refused", Backoff: fastBackoff})
	runForwarder(t, f)

	eventually(t, 10*time.Second, "a failure", func() bool { return f.State().Failures >= 2 })
	st := f.State()
	if st.Up || !strings.Contains(st.LastError, "403") {
		t.Errorf("state %+v, want down with the proxy's 403", st)
	}
	if got := streamStats(s, "line1").FirstSeq; got != 1 {
		t.Errorf("cursor %d, want 1: nothing may be acknowledged", got)
	}
}

// TestMQTTOutage stops the broker while records are appended; when it
// comes back the backlog drains by itself, in order, without loss.
func TestMQTTOutage(t *testing.T) {
	pki := newPKI(t)
	b := startBroker(t, pki)
	in := &inbox{}
	subscribe(t, b, pki, "plant/#", in)

	s := openSpool(t)
	f := newForwarder(t, s, Options{URL: b.url(), Topic: "plant/{stream}", TLS: pki.clientTLS(t),
		ClientID: "gw-outage", BatchRecords: 20, Timeout: 2 * time.Second, Backoff: fastBackoff})
	runForwarder(t, f)

	appendRecords(t, s, "line1", 1, 100)
	eventually(t, 10*time.Second, "first part", func() bool { return drained(s, "line1", 100) })

	b.stop()
	eventually(t, 10*time.Second, "link down", func() bool { return !f.State().Up })
	appendRecords(t, s, "line1", 101, 400)
	time.Sleep(300 * time.Millisecond)
	if got := streamStats(s, "line1").FirstSeq; got != 101 {
		t.Fatalf("cursor moved to %d while the broker was down", got)
	}

	b.start()
	eventually(t, 20*time.Second, "backlog drained", func() bool { return drained(s, "line1", 500) })
	eventually(t, 20*time.Second, "subscriber caught up", func() bool { return len(dedup(in.seqs()["line1"])) == 500 })

	got := in.seqs()["line1"]
	if diff := cmp.Diff(upTo(500), dedup(got)); diff != "" {
		t.Errorf("distinct records in order (-want +got):\n%s", diff)
	}
	in.checkRecords(t)
	if !f.State().Up {
		t.Errorf("state %+v, want up", f.State())
	}
	t.Logf("%d messages for 500 records", len(got))
}

// TestMQTTKillMidBatch kills the broker while batches are in flight.
// Nothing may be acknowledged in the spool that the broker did not
// PUBACK (mosquitto's log lists every PUBACK it sent), and after a
// restart the first record re-sent is the first one not acknowledged.
func TestMQTTKillMidBatch(t *testing.T) {
	const total = 40000
	pki := newPKI(t)
	b := startBroker(t, pki)

	s := openSpool(t)
	appendRecords(t, s, "line1", 1, total)
	f := newForwarder(t, s, Options{URL: b.url(), Topic: "plant/{stream}", TLS: pki.clientTLS(t),
		ClientID: "gw-kill", BatchRecords: 500, Timeout: 2 * time.Second,
		Backoff: Backoff{Min: 3 * time.Second, Max: 3 * time.Second}})
	runForwarder(t, f)

	// Kill while the broker is half way through a batch of PUBACKs.
	eventually(t, 20*time.Second, "mid-batch", func() bool {
		n := strings.Count(b.logText(), "Sending PUBACK to gw-kill")
		return n > 2000 && n%500 > 50 && n%500 < 450
	})
	b.kill()
	eventually(t, 10*time.Second, "link down", func() bool { return !f.State().Up })
	cursor := streamStats(s, "line1").FirstSeq
	if cursor > total {
		t.Fatalf("all %d records drained before the kill", total)
	}

	pubacks := strings.Count(b.logText(), "Sending PUBACK to gw-kill")
	t.Logf("cursor %d after the kill, broker sent %d PUBACKs", cursor, pubacks)
	if int(cursor-1) > pubacks {
		t.Fatalf("%d records acknowledged in the spool, only %d PUBACKs sent", cursor-1, pubacks)
	}

	b.start()
	in := &inbox{}
	subscribe(t, b, pki, "plant/#", in)
	f.Kick()
	eventually(t, 30*time.Second, "backlog drained", func() bool { return drained(s, "line1", total) })
	eventually(t, 30*time.Second, "subscriber caught up", func() bool {
		return len(dedup(in.seqs()["line1"])) == int(total-cursor+1)
	})

	got := in.seqs()["line1"]
	want := upTo(total)[cursor-1:]
	if diff := cmp.Diff(want, dedup(got)); diff != "" {
		t.Errorf("records after the restart (-want +got):\n%s", diff)
	}
}
