package forward

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/config"
)

// TestNewRefuses checks that New rejects bad options with an error that
// names the option.
func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "no url", opts: Options{}, want: "no host"},
		{name: "plain mqtt", opts: Options{URL: "mqtt://broker:1883", Topic: "t"}, want: `scheme "mqtt"`},
		{name: "plain http", opts: Options{URL: "http://ingest/"}, want: `scheme "http"`},
		{name: "mqtt without topic", opts: Options{URL: "mqtts://broker"}, want: "topic: required"},
		{name: "wildcard topic", opts: Options{URL: "mqtts://broker", Topic: "a/+/{stream}"}, want: "wildcards"},
		{name: "socks proxy", opts: Options{URL: "https://ingest/", Proxy: "socks5://p:1080"}, want: "want http://host:port"},
		{name: "proxy without port", opts: Options{URL: "https://ingest/", Proxy: "http://p"}, want: "want http://host:port"},
		{name: "bad suffix", opts: Options{URL: "https://ingest/", DeadLetterSuffix: "/dead"}, want: "dead letter suffix"},
		{name: "backoff max below min", opts: Options{URL: "https://ingest/", Backoff: Backoff{Min: 2e9, Max: 1e9}}, want: "backoff: max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(openSpool(t), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestNewDefaults checks the defaults and the parsed upstream.
func TestNewDefaults(t *testing.T) {
	f := newForwarder(t, openSpool(t), Options{URL: "mqtts://user:pw@broker.example", Topic: "p/{stream}"})
	got := []any{f.up.addr, f.up.host, f.up.mqtt, f.opts.BatchRecords, f.opts.BatchBytes,
		f.opts.MaxTries, f.opts.DeadLetterSuffix, f.opts.Timeout, f.opts.Backoff.Min, f.opts.Backoff.Max,
		f.opts.Backoff.ResetAfter, strings.HasPrefix(f.opts.ClientID, "edgeward")}
	want := []any{"broker.example:8883", "broker.example", true, 100, 1 << 20,
		5, ".dead", DefaultTimeout, DefaultBackoffMin, DefaultBackoffMax, DefaultBackoffReset, true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

// TestOptionsFromConfig loads TLS files and reports the bad ones by name.
func TestOptionsFromConfig(t *testing.T) {
	pki := newPKI(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)

	tests := []struct {
		name    string
		tls     config.TLS
		wantErr string
		certs   int
		roots   bool
	}{
		{name: "all", tls: config.TLS{CA: pki.caFile, Cert: pki.clientCert, Key: pki.clientKey}, certs: 1, roots: true},
		{name: "ca only", tls: config.TLS{CA: pki.caFile}, roots: true},
		{name: "none: system roots", tls: config.TLS{}},
		{name: "missing ca", tls: config.TLS{CA: "/nonexistent/ca.pem"}, wantErr: "/nonexistent/ca.pem"},
		{name: "garbage ca", tls: config.TLS{CA: garbage}, wantErr: garbage + ": no PEM certificate"},
		{name: "cert without key", tls: config.TLS{Cert: pki.clientCert}, wantErr: "together"},
		{name: "key mismatch", tls: config.TLS{Cert: pki.clientCert, Key: pki.serverKey}, wantErr: pki.serverKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := OptionsFromConfig(config.Forward{URL: "https://x/", Proxy: "http://p:3128", TLS: tt.tls})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []any{o.URL, o.Proxy, len(o.TLS.Certificates), o.TLS.RootCAs != nil}
			want := []any{"https://x/", "http://p:3128", tt.certs, tt.roots}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}
