package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// PostRecord appends one JSON record to stream through the spool's ingest
// API at api ("http://ip:port") and returns the sequence number the spool
// gave it. It fails on a transport error, a status other than 200, or a
// reply that does not name exactly one new record.
func PostRecord(ctx context.Context, client *http.Client, api, stream, rec string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/streams/"+stream, strings.NewReader(rec))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()

	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("post %s: %s: %s", stream, resp.Status, body)
	}
	var res struct {
		FirstSeq uint64 `json:"first_seq"`
		LastSeq  uint64 `json:"last_seq"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.FirstSeq == 0 || res.FirstSeq != res.LastSeq {
		return 0, fmt.Errorf("post %s: reply %s: %v", stream, body, err)
	}
	return res.FirstSeq, nil
}
