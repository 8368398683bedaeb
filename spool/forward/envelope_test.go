package forward

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/spool"
)

// TestEnvelope checks the JSON carried for each kind of record.
func TestEnvelope(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	tests := []struct {
		name   string
		data   string
		reason string
		want   string
	}{
		{
			name: "json object, compacted",
			data: "{ \"t\": 21.5,\n  \"unit\": \"C\" }",
			want: `{"stream":"line1","seq":42,"time":"2025-01-02T02:04:05.000000006Z","data":{"t":21.5,"unit":"C"}}`,
		},
		{
			name: "json number",
			data: "17",
			want: `{"stream":"line1","seq":42,"time":"2025-01-02T02:04:05.000000006Z","data":17}`,
		},
		{
			name: "text is not json",
			data: "hello",
			want: `{"stream":"line1","seq":42,"time":"2025-01-02T02:04:05.000000006Z","data_b64":"aGVsbG8="}`,
		},
		{
			name: "binary",
			data: "\x00\xff\n",
			want: `{"stream":"line1","seq":42,"time":"2025-01-02T02:04:05.000000006Z","data_b64":"AP8K"}`,
		},
		{
			name: "truncated json",
			data: `{"a":`,
			want: `{"stream":"line1","seq":42,"time":"2025-01-02T02:04:05.000000006Z","data_b64":"eyJhIjo="}`,
		},
		{
			name:   "dead letter with reason",
			data:   `[1,2]`,
			reason: "rejected by upstream: http 400: bad \"unit\"\n",
			want:   `{"stream":"line1","seq":42,"time":"2025-01-02T02:04:05.000000006Z","data":[1,2],"error":"rejected by upstream: http 400: bad \"unit\"\n"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := spool.Record{Stream: "line1", Seq: 42, Time: at, Data: []byte(tt.data)}
			got := envelope(rec, tt.reason)
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
			if !json.Valid(got) {
				t.Errorf("envelope is not valid JSON: %s", got)
			}
		})
	}
}

// TestDeadLetterStream checks the names of dead-letter streams and that
// they are recognised.
func TestDeadLetterStream(t *testing.T) {
	long := "a123456789b123456789c123456789d123456789e123456789f123456789wxyz"
	tests := []struct {
		suffix, stream, want string
	}{
		{suffix: "", stream: "line1", want: "line1.dead"},
		{suffix: "-rejected", stream: "line1", want: "line1-rejected"},
		{suffix: "", stream: long, want: long[:59] + ".dead"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			f := newForwarder(t, openSpool(t), Options{URL: "https://127.0.0.1:1/", DeadLetterSuffix: tt.suffix})
			got := f.deadLetterStream(tt.stream)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("name (-want +got):\n%s", diff)
			}
			if !spool.ValidStreamName(got) || !f.isDeadLetter(got) || f.isDeadLetter(tt.stream) {
				t.Errorf("%q: valid %v, dead %v; %q dead %v", got, spool.ValidStreamName(got),
					f.isDeadLetter(got), tt.stream, f.isDeadLetter(tt.stream))
			}
		})
	}
}
