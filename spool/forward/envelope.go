package forward

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/edgeward/edgeward/spool"
)

// appendEnvelope writes rec as one line of JSON, without a newline:
//
//	{"stream":"line1","seq":42,"time":"2025-01-02T03:04:05.000000006Z","data":{...}}
//	{"stream":"line1","seq":43,"time":"...","data_b64":"AAEC"}
//
// A record that is valid JSON goes under "data" with the whitespace
// outside its strings removed; any other record goes under "data_b64",
// standard base64. A non-empty reason adds "error" (dead letters).
func appendEnvelope(buf *bytes.Buffer, rec spool.Record, reason string) {
	// Stream names are [a-z0-9._-] (spool.ValidStreamName): no escaping.
	buf.WriteString(`{"stream":"`)
	buf.WriteString(rec.Stream)
	buf.WriteString(`","seq":`)
	buf.Write(strconv.AppendUint(buf.AvailableBuffer(), rec.Seq, 10))

	buf.WriteString(`,"time":"`)
	buf.Write(rec.Time.UTC().AppendFormat(buf.AvailableBuffer(), time.RFC3339Nano))
	buf.WriteString(`",`)

	appendData(buf, rec.Data)

	if reason != "" {
		quoted, _ := json.Marshal(reason) // a string always marshals
		buf.WriteString(`,"error":`)
		buf.Write(quoted)
	}
	buf.WriteByte('}')
}

// appendData writes the "data" or "data_b64" member.
func appendData(buf *bytes.Buffer, data []byte) {
	mark := buf.Len()
	buf.WriteString(`"data":`)
	if json.Compact(buf, data) == nil {
		return
	}

	buf.Truncate(mark)
	buf.WriteString(`"data_b64":"`)
	enc := base64.StdEncoding
	out := buf.AvailableBuffer()
	buf.Write(enc.AppendEncode(out, data))
	buf.WriteByte('"')
}

// envelope returns rec's envelope as a new slice.
func envelope(rec spool.Record, reason string) []byte {
	var buf bytes.Buffer
	buf.Grow(len(rec.Data)*4/3 + 96)
	appendEnvelope(&buf, rec, reason)
	return buf.Bytes()
}
