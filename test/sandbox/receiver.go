package sandbox

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
)

// maxBatchBody bounds one request body the receiver reads.
const maxBatchBody = 8 << 20

// Receiver is an HTTPS server on the internet host ([InternetHost4]:
// [HTTPSPort], in wan) that takes spool/forward's NDJSON batches: each
// POST is answered 200 once its envelopes are in Inbox. The demo policy
// lets the gateway reach it only through the proxy (CONNECT). It
// replaces the greeter on that address.
type Receiver struct {
	// URL is the receiver's address, https://192.0.2.80/ingest.
	URL string
	// Inbox holds every record received, in order.
	Inbox *Inbox
}

// StartReceiver serves the receiver with a certificate from the sandbox
// CA until the sandbox closes. It fails when the address cannot be
// taken over.
func (s *Sandbox) StartReceiver() (*Receiver, error) {
	addr := Addr(InternetHost4, HTTPSPort)
	if err := s.replaceServer(addr); err != nil {
		return nil, err
	}
	r := &Receiver{URL: "https://" + InternetHost4 + "/ingest", Inbox: &Inbox{}}
	if err := s.serveHTTPS(WAN, addr, "receiver", http.HandlerFunc(r.serveBatch)); err != nil {
		return nil, err
	}
	return r, nil
}

// serveBatch records one batch and checks its headers against its body;
// disagreement is noted in Inbox.Problems, the batch is still taken.
func (r *Receiver) serveBatch(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxBatchBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	var batch []Delivery
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, maxBatchBody)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		d, err := parseEnvelope(sc.Bytes())
		if err != nil {
			r.Inbox.problem("%v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		batch = append(batch, d)
	}
	r.checkHeaders(req.Header, batch)
	r.Inbox.add(batch...)
	w.WriteHeader(http.StatusOK)
}

// checkHeaders notes Edgeward-* headers that disagree with the body.
func (r *Receiver) checkHeaders(h http.Header, batch []Delivery) {
	if len(batch) == 0 {
		r.Inbox.problem("empty batch")
		return
	}
	first, last := batch[0], batch[len(batch)-1]
	want := map[string]string{
		"Edgeward-Stream":    first.Stream,
		"Edgeward-First-Seq": strconv.FormatUint(first.Seq, 10),
		"Edgeward-Last-Seq":  strconv.FormatUint(last.Seq, 10),
		"Edgeward-Records":   strconv.Itoa(len(batch)),
		"Content-Type":       "application/x-ndjson",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			r.Inbox.problem("header %s: %q, body says %q", k, got, v)
		}
	}
	for _, d := range batch {
		if d.Stream != first.Stream {
			r.Inbox.problem("batch of %s holds a record of %s", first.Stream, d.Stream)
		}
	}
}
