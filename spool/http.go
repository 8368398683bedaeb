package spool

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Defaults for zero HandlerOptions fields.
const (
	DefaultMaxRequestBytes = 8 << 20
	DefaultMaxBatchRecords = 10000
)

// HandlerOptions configures the ingest API.
type HandlerOptions struct {
	// MaxRequestBytes bounds a request body (default 8 MiB). Records are
	// bounded by the spool's Options.MaxRecordBytes.
	MaxRequestBytes int64
	// MaxBatchRecords bounds the lines of one NDJSON request (default 10000).
	MaxBatchRecords int
	// Token, when set, must arrive as "Authorization: Bearer <token>".
	Token string
}

// AppendResult is the JSON reply to a successful POST: the records got the
// consecutive sequence numbers first_seq..last_seq.
type AppendResult struct {
	Stream   string `json:"stream"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Count    int    `json:"count"`
}

// StreamInfo is one entry of the GET /v1/streams reply.
type StreamInfo struct {
	Stream           string  `json:"stream"`
	BacklogBytes     int64   `json:"backlog_bytes"`
	BacklogRecords   int64   `json:"backlog_records"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	FirstSeq         uint64  `json:"first_seq"`
	LastSeq          uint64  `json:"last_seq"`
}

// handler serves the ingest API.
type handler struct {
	s    *Spool
	opts HandlerOptions
}

// NewHandler returns the ingest API of s:
//
//	POST /v1/streams/{stream}   one record (the body), or with
//	                            Content-Type application/x-ndjson one
//	                            record per non-empty line (each valid JSON)
//	GET  /v1/streams            streams with their backlog
//
// A POST is answered only once its records are durable; the batch is
// stored whole or not at all. Errors are JSON {"error": "..."} with 400
// (bad name, a name reserved for dead letters, empty or malformed
// record), 401 (token), 404, 405, 413
// (record or request too large), 507 (stream or spool full, disk full,
// too many streams) or 500.
func NewHandler(s *Spool, opts HandlerOptions) http.Handler {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.MaxBatchRecords <= 0 {
		opts.MaxBatchRecords = DefaultMaxBatchRecords
	}
	return &handler{s: s, opts: opts}
}

// ServeHTTP routes a request.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="edgeward-spool"`)
		writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
		return
	}

	switch {
	case r.URL.Path == "/v1/streams":
		h.only(w, r, http.MethodGet, h.list)
	case strings.HasPrefix(r.URL.Path, "/v1/streams/"):
		h.only(w, r, http.MethodPost, h.post)
	default:
		writeError(w, http.StatusNotFound, fmt.Errorf("no route for %s", r.URL.Path))
	}
}

// authorized compares the bearer token in constant time. The scheme is
// case-insensitive (RFC 7235); spaces around the token do not count.
func (h *handler) authorized(r *http.Request) bool {
	if h.opts.Token == "" {
		return true
	}
	scheme, got, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	got = strings.TrimSpace(got)
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.Token)) == 1
}

// only runs next when the method matches, else answers 405.
func (h *handler) only(w http.ResponseWriter, r *http.Request, method string, next http.HandlerFunc) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
		return
	}
	next(w, r)
}

// post appends the body to the stream named in the path.
func (h *handler) post(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/v1/streams/")
	if err := checkStreamName(name); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if IsDeadLetter(name) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("stream %q: names ending in %q are reserved for dead letters", name, DeadLetterSuffix))
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxRequestBytes))
	if err != nil {
		writeError(w, statusOf(err), fmt.Errorf("read body: %w", err))
		return
	}
	records, err := h.split(r, body)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}

	first, last, err := h.s.Append(r.Context(), name, records...)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, AppendResult{Stream: name, FirstSeq: first, LastSeq: last, Count: len(records)})
}

// split returns the records of a body: the body itself, or its NDJSON
// lines.
func (h *handler) split(r *http.Request, body []byte) ([][]byte, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-ndjson" {
		return [][]byte{body}, nil
	}

	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for line := 1; sc.Scan(); line++ {
		rec := bytes.TrimSpace(sc.Bytes())
		if len(rec) == 0 {
			continue
		}
		if !json.Valid(rec) {
			return nil, fmt.Errorf("line %d: %w", line, errBadJSON)
		}
		if len(out) == h.opts.MaxBatchRecords {
			return nil, fmt.Errorf("more than %d records: %w", h.opts.MaxBatchRecords, errTooManyRecords)
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no records: %w", ErrEmptyRecord)
	}
	return out, nil
}

var (
	errBadJSON        = errors.New("not valid JSON")
	errTooManyRecords = errors.New("too many records")
)

// list answers GET /v1/streams.
func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	out := struct {
		Streams []StreamInfo `json:"streams"`
	}{Streams: []StreamInfo{}}

	for _, ss := range h.s.Stats().Streams {
		out.Streams = append(out.Streams, StreamInfo{
			Stream: ss.Stream, BacklogBytes: ss.BacklogBytes, BacklogRecords: ss.BacklogRecords,
			OldestAgeSeconds: ss.OldestAge.Seconds(), FirstSeq: ss.FirstSeq, LastSeq: ss.LastSeq,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// statusOf maps an error to an HTTP status.
func statusOf(err error) int {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig), errors.Is(err, ErrRecordTooLarge), errors.Is(err, errTooManyRecords):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrFull), errors.Is(err, ErrTooManyStreams):
		return http.StatusInsufficientStorage
	case errors.Is(err, ErrBadStreamName), errors.Is(err, ErrEmptyRecord), errors.Is(err, errBadJSON):
		return http.StatusBadRequest
	case errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers {"error": "..."}.
func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
