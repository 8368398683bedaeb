package forward

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/spool"
)

// receiver is an HTTPS endpoint on 127.0.0.1 that requires a client
// certificate from the test CA and records every batch it is posted.
type receiver struct {
	srv  *httptest.Server
	port int

	mu       sync.Mutex
	accepted map[string][]uint64 // by stream, in arrival order
	posts    [][]delivered       // every batch, accepted or not
	problems []string
	refuse   func([]delivered) int // status for a batch; 0 accepts
}

// startReceiver starts the endpoint with the test PKI.
func startReceiver(t *testing.T, pki *testPKI, refuse func([]delivered) int) *receiver {
	t.Helper()
	rc := &receiver{accepted: make(map[string][]uint64), refuse: refuse}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	rc.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	rc.srv.StartTLS()
	t.Cleanup(rc.srv.Close)

	rc.port, _ = strconv.Atoi(rc.srv.URL[strings.LastIndex(rc.srv.URL, ":")+1:])
	return rc
}

// url is where the forwarder posts.
func (rc *receiver) url() string { return rc.srv.URL + "/v1/telemetry" }

// serve decodes one batch and checks its headers against its body.
func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	var recs []delivered
	in := &inbox{}
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		in.add("", sc.Bytes())
	}
	recs = in.got

	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.posts = append(rc.posts, recs)
	rc.check(r, recs, in.bad)

	if code := rc.refuse(recs); code != 0 {
		http.Error(w, "refused by test", code)
		return
	}
	for _, d := range recs {
		rc.accepted[d.Stream] = append(rc.accepted[d.Stream], d.Seq)
	}
	w.WriteHeader(http.StatusNoContent)
}

// check notes a batch whose headers do not describe its body.
func (rc *receiver) check(r *http.Request, recs []delivered, bad []string) {
	if len(recs) == 0 || len(bad) > 0 {
		rc.problems = append(rc.problems, fmt.Sprintf("empty or bad batch: %q", bad))
		return
	}
	got := []string{r.Header.Get("Content-Type"), r.Header.Get(HeaderStream),
		r.Header.Get(HeaderFirstSeq), r.Header.Get(HeaderLastSeq), r.Header.Get(HeaderCount)}
	want := []string{"application/x-ndjson", recs[0].Stream,
		strconv.FormatUint(recs[0].Seq, 10), strconv.FormatUint(recs[len(recs)-1].Seq, 10), strconv.Itoa(len(recs))}
	if diff := cmp.Diff(want, got); diff != "" {
		rc.problems = append(rc.problems, "headers (-want +got):\n"+diff)
	}
}

// snapshot returns what was accepted and the problems seen.
func (rc *receiver) snapshot() (map[string][]uint64, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	acc := make(map[string][]uint64)
	for k, v := range rc.accepted {
		acc[k] = append([]uint64(nil), v...)
	}
	return acc, append([]string(nil), rc.problems...)
}

// acceptAll is a receiver policy that takes everything.
func acceptAll([]delivered) int { return 0 }

// TestHTTPS posts two streams as NDJSON batches with client-certificate
// authentication, directly and through tinyproxy.
func TestHTTPS(t *testing.T) {
	for _, viaProxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("proxy=%v", viaProxy), func(t *testing.T) {
			pki := newPKI(t)
			rc := startReceiver(t, pki, acceptAll)
			opts := Options{URL: rc.url(), TLS: pki.clientTLS(t), BatchRecords: 40, Backoff: fastBackoff}
			var px *proxy
			if viaProxy {
				px = startProxy(t, rc.port)
				opts.Proxy = px.url
			}

			s := openSpool(t)
			appendRecords(t, s, "line1", 1, 150)
			appendRecords(t, s, "line2", 1, 30)
			f := newForwarder(t, s, opts)
			runForwarder(t, f)

			eventually(t, 20*time.Second, "acks", func() bool { return drained(s, "line1", 150) && drained(s, "line2", 30) })
			acc, problems := rc.snapshot()
			want := map[string][]uint64{"line1": upTo(150), "line2": upTo(30)}
			if diff := cmp.Diff(want, acc); diff != "" {
				t.Errorf("accepted (-want +got):\n%s", diff)
			}
			for _, p := range problems {
				t.Error(p)
			}
			if viaProxy && px.connects() == 0 {
				t.Errorf("tinyproxy logged no request")
			}
			if st := f.State(); !st.Up || st.LastSuccess.IsZero() {
				t.Errorf("state %+v, want up with a success", st)
			}
		})
	}
}

// TestHTTPSNoClientCert checks that a TLS failure is a retried failure
// that acknowledges nothing.
func TestHTTPSNoClientCert(t *testing.T) {
	pki := newPKI(t)
	rc := startReceiver(t, pki, acceptAll)
	noCert := pki.clientTLS(t)
	noCert.Certificates = nil

	s := openSpool(t)
	appendRecords(t, s, "line1", 1, 3)
	f := newForwarder(t, s, Options{URL: rc.url(), TLS: noCert, Backoff: fastBackoff})
	runForwarder(t, f)

	eventually(t, 10*time.Second, "failures", func() bool { return f.State().Failures >= 2 })
	if st := f.State(); st.Up || !strings.Contains(st.LastError, "tls") {
		t.Errorf("state %+v, want down with a tls error", st)
	}
	if got := streamStats(s, "line1").FirstSeq; got != 1 {
		t.Errorf("cursor %d, want 1", got)
	}
}

// TestHTTPSPoison has the receiver refuse every batch holding one record:
// that record is sent alone MaxTries times, dead-lettered with the
// refusal, and the records around it are delivered once each.
func TestHTTPSPoison(t *testing.T) {
	const poison = 7
	pki := newPKI(t)
	rc := startReceiver(t, pki, func(recs []delivered) int {
		for _, d := range recs {
			if d.Seq == poison {
				return http.StatusBadRequest
			}
		}
		return 0
	})

	s := openSpool(t)
	appendRecords(t, s, "line1", 1, 30)
	f := newForwarder(t, s, Options{URL: rc.url(), TLS: pki.clientTLS(t), BatchRecords: 10,
		MaxTries: 3, Backoff: Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	runForwarder(t, f)

	eventually(t, 20*time.Second, "acks", func() bool { return drained(s, "line1", 30) })
	acc, problems := rc.snapshot()
	want := append(upTo(poison-1), upTo(30)[poison:]...)
	if diff := cmp.Diff(map[string][]uint64{"line1": want}, acc); diff != "" {
		t.Errorf("accepted (-want +got):\n%s", diff)
	}
	for _, p := range problems {
		t.Error(p)
	}

	if got := alonePosts(rc, poison); got != 3 {
		t.Errorf("record %d posted alone %d times, want 3 (MaxTries)", poison, got)
	}
	checkDeadLetter(t, s, f, poison)
}

// alonePosts counts the batches that held only record seq.
func alonePosts(rc *receiver, seq uint64) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, p := range rc.posts {
		if len(p) == 1 && p[0].Seq == seq {
			n++
		}
	}
	return n
}

// checkDeadLetter verifies the dead-letter stream, the loss log, the
// counters and that the dead-letter stream is not forwarded.
func checkDeadLetter(t *testing.T, s *spool.Spool, f *Forwarder, seq uint64) {
	t.Helper()
	losses, err := s.Losses("line1")
	if err != nil {
		t.Fatal(err)
	}
	wantLoss := []spool.LossRange{{First: seq, Last: seq, Reason: spool.DropDeadLetter}}
	if diff := cmp.Diff(wantLoss, losses, cmpLoss); diff != "" {
		t.Errorf("losses (-want +got):\n%s", diff)
	}

	dead := streamStats(s, "line1.dead")
	if dead.Appended != 1 || dead.FirstSeq != 1 {
		t.Errorf("dead-letter stream %+v: want one record, not forwarded", dead)
	}
	r := s.NewReader()
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	recs, err := r.Next(ctx, 10)
	if err != nil || len(recs) != 1 || recs[0].Stream != "line1.dead" {
		t.Fatalf("dead letter: %v, %v", recs, err)
	}
	in := &inbox{}
	in.add("", recs[0].Data)
	if len(in.got) != 1 || in.got[0].Seq != seq || !strings.Contains(in.got[0].Error, "http 400") {
		t.Errorf("dead letter %s: want seq %d and the refusal", recs[0].Data, seq)
	}
	if st := f.State(); st.DeadLettered != 1 {
		t.Errorf("state counts %d dead letters, want 1", st.DeadLettered)
	}
}

// cmpLoss compares loss ranges without their time.
var cmpLoss = cmp.Comparer(func(a, b spool.LossRange) bool {
	return a.First == b.First && a.Last == b.Last && a.Reason == b.Reason
})

// TestJudge maps HTTP status codes to acknowledgement, retry or
// rejection.
func TestJudge(t *testing.T) {
	recs := []spool.Record{{Stream: "s", Seq: 4}, {Stream: "s", Seq: 5}}
	tests := []struct {
		code     int
		acked    int
		rejected bool
		failed   bool
	}{
		{code: 200, acked: 2},
		{code: 204, acked: 2},
		{code: 302, failed: true},
		{code: 400, rejected: true},
		{code: 403, rejected: true},
		{code: 408, failed: true},
		{code: 413, rejected: true},
		{code: 429, failed: true},
		{code: 500, failed: true},
		{code: 503, failed: true},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			n, err := judge(tt.code, recs, "detail")
			var rej *RejectedError
			got := []any{n, errors.As(err, &rej), err != nil && rej == nil}
			want := []any{tt.acked, tt.rejected, tt.failed}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("acked, rejected, failed (-want +got):\n%s", diff)
			}
		})
	}
}
