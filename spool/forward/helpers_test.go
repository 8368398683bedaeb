package forward

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeward/edgeward/spool"
)

// TestMain checks that no goroutine outlives the tests.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !settles(before) {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		fmt.Fprintf(os.Stderr, "goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
		code = 1
	}
	os.Exit(code)
}

// settles waits up to five seconds for the goroutine count to drop to n.
func settles(n int) bool {
	for range 500 {
		if runtime.NumGoroutine() <= n {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// openSpool opens a spool in a temporary folder, closed at cleanup.
func openSpool(t testing.TB) *spool.Spool {
	t.Helper()
	s, _, err := spool.Open(spool.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendRecords appends n JSON records {"n":i} (i from first) to stream,
// in one durable append.
func appendRecords(t testing.TB, s *spool.Spool, stream string, first, n int) {
	t.Helper()
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = fmt.Appendf(nil, `{"n":%d}`, first+i)
	}
	if _, _, err := s.Append(context.Background(), stream, recs...); err != nil {
		t.Fatal(err)
	}
}

// fastBackoff keeps retries quick in tests.
var fastBackoff = Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}

// runForwarder starts f.Run and stops it at cleanup; Run must return
// nil.
func runForwarder(t *testing.T, f *Forwarder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// newForwarder builds a forwarder or fails the test.
func newForwarder(t testing.TB, s *spool.Spool, o Options) *Forwarder {
	t.Helper()
	f, err := New(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// eventually polls cond every 10 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// streamStats returns the spool's stats of one stream.
func streamStats(s *spool.Spool, stream string) spool.StreamStats {
	for _, ss := range s.Stats().Streams {
		if ss.Stream == stream {
			return ss
		}
	}
	return spool.StreamStats{}
}

// drained reports whether every record of stream was acknowledged.
func drained(s *spool.Spool, stream string, last uint64) bool {
	return streamStats(s, stream).FirstSeq == last+1
}

// delivered is one envelope as a receiver decodes it.
type delivered struct {
	Stream string          `json:"stream"`
	Seq    uint64          `json:"seq"`
	Time   time.Time       `json:"time"`
	Data   json.RawMessage `json:"data"`
	B64    []byte          `json:"data_b64"`
	Error  string          `json:"error"`
}

// inbox collects envelopes, safe for concurrent use.
type inbox struct {
	mu   sync.Mutex
	got  []delivered
	bad  []string
	from map[string]string // topic of each stream, MQTT only
}

// add decodes one envelope.
func (in *inbox) add(topic string, payload []byte) {
	var d delivered
	err := json.Unmarshal(payload, &d)

	in.mu.Lock()
	defer in.mu.Unlock()
	if err != nil {
		in.bad = append(in.bad, string(payload))
		return
	}
	in.got = append(in.got, d)
	if topic != "" {
		if in.from == nil {
			in.from = make(map[string]string)
		}
		in.from[d.Stream] = topic
	}
}

// seqs returns, per stream, the sequence numbers in arrival order.
func (in *inbox) seqs() map[string][]uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[string][]uint64)
	for _, d := range in.got {
		out[d.Stream] = append(out[d.Stream], d.Seq)
	}
	return out
}

// count returns how many envelopes arrived.
func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.got)
}

// checkRecords verifies that every envelope of stream carries {"n":seq}
// (as appendRecords wrote it from first = 1).
func (in *inbox) checkRecords(t *testing.T) {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.bad) > 0 {
		t.Errorf("undecodable envelopes: %q", in.bad[:min(3, len(in.bad))])
	}
	for _, d := range in.got {
		if want := fmt.Sprintf(`{"n":%d}`, d.Seq); string(d.Data) != want {
			t.Errorf("%s %d: data %s, want %s", d.Stream, d.Seq, d.Data, want)
		}
		if d.Time.IsZero() {
			t.Errorf("%s %d: no time", d.Stream, d.Seq)
		}
	}
}

// upTo returns 1..n.
func upTo(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

// dedup returns the distinct numbers of seqs in first-arrival order.
func dedup(seqs []uint64) []uint64 {
	seen := make(map[uint64]bool)
	var out []uint64
	for _, s := range seqs {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// subscribe connects an independent MQTT client with the test's client
// certificate and collects every message under filter into the inbox.
// Its session is persistent, so it survives a broker restart.
func subscribe(t *testing.T, b *broker, pki *testPKI, filter string, in *inbox) {
	t.Helper()
	o := mqtt.NewClientOptions().
		AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", b.port)).
		SetClientID("test-subscriber").
		SetCleanSession(false).
		SetTLSConfig(pki.clientTLS(t)).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(100 * time.Millisecond).
		SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { in.add(m.Topic(), m.Payload()) })

	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
}
