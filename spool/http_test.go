package spool

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// serve starts the handler on 127.0.0.1, port 0.
func serve(t *testing.T, s *Spool, opts HandlerOptions) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(s, opts))
	t.Cleanup(srv.Close)
	return srv
}

// do sends one request and returns the status and the decoded JSON body.
func do(t *testing.T, srv *httptest.Server, method, path, ctype, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}

	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)

	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out
}

func TestHandlerPost(t *testing.T) {
	s, _ := openSpool(t, Options{MaxRecordBytes: 64, MaxStreamBytes: 4096, WhenFull: Reject})
	srv := serve(t, s, HandlerOptions{MaxRequestBytes: 1024, MaxBatchRecords: 5})
	const nd = "application/x-ndjson"

	tests := []struct {
		name   string
		path   string
		ctype  string
		body   string
		status int
		want   map[string]any // nil: only an "error" key is expected
	}{
		{"single", "/v1/streams/plc-1", "application/octet-stream", "raw bytes", 200,
			map[string]any{"stream": "plc-1", "first_seq": 1.0, "last_seq": 1.0, "count": 1.0}},
		{"ndjson batch", "/v1/streams/plc-1", nd, "{\"a\":1}\n\n{\"a\":2}\r\n[3]\n", 200,
			map[string]any{"stream": "plc-1", "first_seq": 2.0, "last_seq": 4.0, "count": 3.0}},
		{"ndjson with charset", "/v1/streams/plc-1", nd + "; charset=utf-8", "1\n", 200,
			map[string]any{"stream": "plc-1", "first_seq": 5.0, "last_seq": 5.0, "count": 1.0}},
		{"ndjson bad line", "/v1/streams/plc-1", nd, "{\"a\":1}\nnot json\n", 400, nil},
		{"ndjson too many lines", "/v1/streams/plc-1", nd, "1\n2\n3\n4\n5\n6\n", 413, nil},
		{"empty body", "/v1/streams/plc-1", "", "", 400, nil},
		{"record too large", "/v1/streams/plc-1", "", strings.Repeat("x", 65), 413, nil},
		{"request too large", "/v1/streams/plc-1", nd, strings.Repeat("1\n", 600), 413, nil},
		{"bad name upper case", "/v1/streams/PLC", "", "x", 400, nil},
		{"bad name leading dash", "/v1/streams/-x", "", "x", 400, nil},
		{"bad name nested", "/v1/streams/a/b", "", "x", 400, nil},
		{"bad name too long", "/v1/streams/" + strings.Repeat("a", 65), "", "x", 400, nil},
		{"no such route", "/v2/streams/x", "", "x", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := do(t, srv, http.MethodPost, tt.path, tt.ctype, "", tt.body)
			if status != tt.status {
				t.Errorf("status: got %d, want %d (%v)", status, tt.status, got)
			}
			if tt.want == nil {
				if _, ok := got["error"]; !ok || len(got) != 1 {
					t.Errorf("want {\"error\": ...}, got %v", got)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandlerFullIs507(t *testing.T) {
	s, _ := openSpool(t, Options{MaxStreamBytes: 16384, SegmentBytes: 4096, WhenFull: Reject})
	srv := serve(t, s, HandlerOptions{})

	var status int
	var body map[string]any
	for range 200 {
		status, body = do(t, srv, http.MethodPost, "/v1/streams/full", "", "", strings.Repeat("y", 500))
		if status != 200 {
			break
		}
	}
	if status != http.StatusInsufficientStorage {
		t.Fatalf("status when full: got %d, want 507 (%v)", status, body)
	}
	if !strings.Contains(body["error"].(string), "spool full") {
		t.Errorf("error: %v", body)
	}
}

func TestHandlerToken(t *testing.T) {
	s, _ := openSpool(t, Options{})
	srv := serve(t, s, HandlerOptions{Token: "s3cret"})

	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"missing", "", 401},
		{"wrong", "s3cre", 401},
		{"right", "s3cret", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _ := do(t, srv, http.MethodPost, "/v1/streams/x", "", tt.token, "rec")
			if status != tt.status {
				t.Errorf("post: got %d, want %d", status, tt.status)
			}
			status, _ = do(t, srv, http.MethodGet, "/v1/streams", "", tt.token, "")
			if status != tt.status {
				t.Errorf("list: got %d, want %d", status, tt.status)
			}
		})
	}
}

func TestHandlerList(t *testing.T) {
	clk := newFakeClock()
	s, _ := openSpool(t, Options{Now: clk.Now, Monotonic: clk.Mono})
	srv := serve(t, s, HandlerOptions{})

	mustAppend(t, s, "b", "12345")
	clk.advance(90e9)
	mustAppend(t, s, "a", "1", "2")
	clk.advance(10e9)

	status, got := do(t, srv, http.MethodGet, "/v1/streams", "", "", "")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	want := map[string]any{"streams": []any{
		map[string]any{"stream": "a", "backlog_bytes": 66.0, "backlog_records": 2.0,
			"oldest_age_seconds": 10.0, "first_seq": 1.0, "last_seq": 2.0},
		map[string]any{"stream": "b", "backlog_bytes": 37.0, "backlog_records": 1.0,
			"oldest_age_seconds": 100.0, "first_seq": 1.0, "last_seq": 1.0},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}

	status, _ = do(t, srv, http.MethodDelete, "/v1/streams", "", "", "")
	if status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: got %d, want 405", status)
	}
}

// TestHTTPDeadLetterNamesReserved: producers cannot write into a
// dead-letter stream; the bearer scheme is case-insensitive.
func TestHTTPDeadLetterNamesReserved(t *testing.T) {
	s, _, err := Open(Options{Dir: t.TempDir(), MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(NewHandler(s, HandlerOptions{Token: "t0k"}))
	defer srv.Close()

	for _, tc := range []struct {
		stream, auth string
		want         int
	}{
		{"line1.dead", "Bearer t0k", http.StatusBadRequest},
		{"line1", "bearer t0k", http.StatusOK},
		{"line1", "Bearer  t0k ", http.StatusOK},
		{"line1", "Basic t0k", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/streams/"+tc.stream, strings.NewReader("x"))
		req.Header.Set("Authorization", tc.auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST %s with %q: %d, want %d", tc.stream, tc.auth, resp.StatusCode, tc.want)
		}
	}
}

// TestDeadLetterStreamsBeyondMaxStreams: with every ordinary stream taken,
// a dead-letter stream can still be created.
func TestDeadLetterStreamsBeyondMaxStreams(t *testing.T) {
	s, _, err := Open(Options{Dir: t.TempDir(), MaxBytes: 1 << 20, MaxStreams: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, _, err := s.Append(ctx, name, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Append(ctx, "c", []byte("x")); !errors.Is(err, ErrTooManyStreams) {
		t.Errorf("third ordinary stream: %v, want ErrTooManyStreams", err)
	}
	if _, _, err := s.Append(ctx, "a.dead", []byte("x")); err != nil {
		t.Errorf("dead-letter stream with every ordinary one taken: %v", err)
	}
}
