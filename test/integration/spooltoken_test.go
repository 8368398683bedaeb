package integration

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// TestSpoolToken: with spool.token_file set, the ingest API takes records
// only from producers that send the token.
func TestSpoolToken(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	token := filepath.Join(g.sb.Dir, "spool.token")
	writeFile(t, token, "s3cret-token\n")
	rewritePolicy(t, g, demopolicy.Params{ExtraYAML: "spool:\n  listen: [\"10.10.0.1:8470\"]\n  token_file: " + token + "\n"})
	g.start()

	client := g.sb.HTTPClient(sb.OT, 3*time.Second)
	post := func(auth string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://10.10.0.1:8470/v1/streams/line1", strings.NewReader(`{"n":1}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(""); got != http.StatusUnauthorized {
		t.Errorf("POST without the token: %d, want 401", got)
	}
	if got := post("Bearer wrong"); got != http.StatusUnauthorized {
		t.Errorf("POST with a wrong token: %d, want 401", got)
	}
	if got := post("Bearer s3cret-token"); got != http.StatusOK {
		t.Errorf("POST with the token: %d, want 200", got)
	}
}
