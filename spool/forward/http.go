package forward

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/edgeward/edgeward/spool"
)

// Headers of a forwarded HTTPS batch. The body is NDJSON, one envelope
// per record (see appendEnvelope).
const (
	HeaderStream   = "Edgeward-Stream"
	HeaderFirstSeq = "Edgeward-First-Seq"
	HeaderLastSeq  = "Edgeward-Last-Seq"
	HeaderCount    = "Edgeward-Records"
)

// maxErrorBody bounds how much of a refusal's body is read and kept.
const maxErrorBody = 512

// httpsLink posts batches with one shared client; it keeps connections
// alive between batches and drops them when a session ends.
type httpsLink struct {
	client *http.Client
	url    string
}

// newHTTPClient builds the client once per Forwarder: no redirects, no
// environment proxy, every phase bounded by timeout.
func newHTTPClient(o Options, proxy *url.URL) *http.Client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: o.Timeout}).DialContext,
		TLSClientConfig:       o.TLS.Clone(),
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
		IdleConnTimeout:       90 * o.Timeout / 10,
		MaxIdleConnsPerHost:   1,
		ForceAttemptHTTP2:     true,
	}
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}

	return &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (h *httpsLink) connect(context.Context) error { return nil }
func (h *httpsLink) lost() <-chan struct{}         { return nil }
func (h *httpsLink) standing() bool                { return false }

// close drops idle connections, so the next session dials afresh.
func (h *httpsLink) close() { h.client.CloseIdleConnections() }

// send posts the records as one NDJSON batch. A 2xx acknowledges all of
// them; 408, 429, 5xx, 3xx and transport errors are failures to retry;
// other 4xx reject the batch (the caller splits it to find the record).
func (h *httpsLink) send(ctx context.Context, recs []spool.Record) (int, error) {
	req, err := h.request(ctx, recs)
	if err != nil {
		return 0, err
	}

	resp, err := h.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post %s: %w", recs[0].Stream, err)
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))

	return judge(resp.StatusCode, recs, strings.TrimSpace(string(detail)))
}

// request builds the POST of one batch.
func (h *httpsLink) request(ctx context.Context, recs []spool.Record) (*http.Request, error) {
	var body bytes.Buffer
	for _, rec := range recs {
		appendEnvelope(&body, rec, "")
		body.WriteByte('\n')
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, &body)
	if err != nil {
		return nil, fmt.Errorf("post %s: %w", recs[0].Stream, err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set(HeaderStream, recs[0].Stream)
	req.Header.Set(HeaderFirstSeq, strconv.FormatUint(recs[0].Seq, 10))
	req.Header.Set(HeaderLastSeq, strconv.FormatUint(recs[len(recs)-1].Seq, 10))
	req.Header.Set(HeaderCount, strconv.Itoa(len(recs)))
	return req, nil
}

// judge turns a status code into the number acknowledged and an error.
func judge(code int, recs []spool.Record, detail string) (int, error) {
	first, last := recs[0].Seq, recs[len(recs)-1].Seq
	switch {
	case code >= 200 && code < 300:
		return len(recs), nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		return 0, fmt.Errorf("post %s %d-%d: http %d, will retry", recs[0].Stream, first, last, code)
	case code >= 400 && code < 500:
		return 0, &RejectedError{Status: code, Detail: detail}
	default:
		return 0, fmt.Errorf("post %s %d-%d: http %d: %s", recs[0].Stream, first, last, code, detail)
	}
}
