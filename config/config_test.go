package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpNet lets cmp compare the net/netip types, which have unexported fields.
var cmpNet = cmpopts.EquateComparable(netip.Prefix{}, netip.AddrPort{}, netip.Addr{})

func TestParseProduct(t *testing.T) {
	const file = "testdata/valid/product.yaml"
	want := &Config{
		File: file,
		Mode: ModeEnforce,
		Interfaces: Interfaces{
			VPN:         []string{"wg0", "tun*"},
			LAN:         []string{"lan0"},
			LANServices: []PortRange{{ProtoTCP, 22, 22}},
		},
		Endpoints: []Endpoint{
			{
				Name:  "vpn-peer",
				To:    []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")},
				Ports: []PortRange{{ProtoUDP, 51820, 51820}},
			},
			{
				Name: "s3-private",
				To: []netip.Prefix{
					netip.MustParsePrefix("10.20.8.0/24"),
					netip.MustParsePrefix("2001:db8:20::/64"),
				},
				Ports: []PortRange{{ProtoTCP, 443, 443}},
			},
		},
		Proxy: &Proxy{Address: netip.MustParseAddrPort("192.0.2.10:3128")},
		DNS: DNS{
			Listen: []netip.AddrPort{
				netip.MustParseAddrPort("127.0.0.1:53"),
				netip.MustParseAddrPort("10.10.0.1:53"),
			},
			Transparent: true,
			Queue:       Queue{Number: DefaultQueueNumber, Length: DefaultQueueLength},
			Upstreams: []Upstream{{
				Zones: []string{"amazonaws.com"},
				Servers: []netip.AddrPort{
					netip.MustParseAddrPort("10.20.0.2:53"),
					netip.MustParseAddrPort("10.20.1.2:53"),
				},
			}},
			Names: []Name{
				{
					Match:     "vpce-0a1b2c3d4e5f6a7b8-abcd1234.s3.eu-west-1.vpce.amazonaws.com",
					Ports:     []PortRange{{ProtoTCP, 443, 443}},
					AnswersIn: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},
				},
				{
					Match:     "*.iot.eu-west-1.amazonaws.com",
					Ports:     []PortRange{{ProtoTCP, 8883, 8883}},
					AnswersIn: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},
				},
			},
			TTL:          TTL{Min: time.Minute, Max: time.Hour},
			DenyResponse: "refused",
		},
		Spool: Spool{
			Dir: "/var/lib/edgeward/spool",
			Listen: []netip.AddrPort{
				netip.MustParseAddrPort("127.0.0.1:8470"),
				netip.MustParseAddrPort("10.10.0.1:8470"),
			},
			MaxBytes: 1 << 30,
			MaxAge:   168 * time.Hour,
			WhenFull: "drop_oldest",
			Forward: &Forward{
				URL:   "mqtts://a1b2c3-ats.iot.eu-west-1.amazonaws.com:8883",
				Topic: "plant-7/{stream}",
				Proxy: "http://192.0.2.10:3128",
				TLS: TLS{
					CA:   "/etc/edgeward/ca.pem",
					Cert: "/etc/edgeward/gw.pem",
					Key:  "/etc/edgeward/gw.key",
				},
			},
		},
		Metrics: Metrics{Listen: "127.0.0.1:9470"},
		Paths: Paths{
			BPFFS:  "/sys/fs/bpf/edgeward",
			State:  "/var/lib/edgeward",
			Socket: "/run/edgeward/edgeward.sock",
		},
	}

	got, err := Load(file)
	if err != nil {
		t.Fatalf("Load(%s): %v", file, err)
	}
	if diff := cmp.Diff(want, got, cmpNet); diff != "" {
		t.Errorf("Load(%s) mismatch (-want +got):\n%s", file, diff)
	}
}

// TestProductExampleVerbatim keeps testdata/valid/product.yaml equal to
// the example in PRODUCT.md, when that file is around to compare with.
func TestProductExampleVerbatim(t *testing.T) {
	// The shared folder sits beside the repository (CI lays it there too).
	path := filepath.Join("..", "..", "shared", "PRODUCT.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("PRODUCT.md not available at %s: %v", path, err)
	}
	_, example, ok := strings.Cut(string(doc), "## Configuration")
	_, example, ok2 := strings.Cut(example, "```yaml\n")
	example, _, ok3 := strings.Cut(example, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no yaml example under \"## Configuration\" in PRODUCT.md")
	}

	got, err := os.ReadFile("testdata/valid/product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(example, string(got)); diff != "" {
		t.Errorf("testdata/valid/product.yaml differs from PRODUCT.md (-want +got):\n%s", diff)
	}
}

func TestParseDefaults(t *testing.T) {
	want := &Config{
		File: "min.yaml",
		Mode: ModeAudit,
		DNS: DNS{
			TTL:          TTL{Min: DefaultTTLMin, Max: DefaultTTLMax},
			Queue:        Queue{Number: 53, Length: 1024},
			DenyResponse: "refused",
		},
		Spool: Spool{
			Dir:      "/srv/gw/spool",
			MaxBytes: 1 << 30,
			MaxAge:   168 * time.Hour,
			WhenFull: "drop_oldest",
		},
		Metrics: Metrics{Listen: "127.0.0.1:9470"},
		Paths: Paths{
			BPFFS:  "/sys/fs/bpf/edgeward",
			State:  "/srv/gw",
			Socket: "/run/edgeward/edgeward.sock",
		},
	}

	got, err := Parse("min.yaml", []byte("mode: audit\npaths: {state: /srv/gw/}\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpNet); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		get  func(*Config) any
		want any
	}{
		{
			name: "name canonical form",
			yaml: "dns:\n  listen: [127.0.0.1:53]\n  upstreams: [{zones: [Example.COM.], servers: ['[2001:db8::53]']}]\n" +
				"  names: [{match: '**.API.Example.com.', ports: [TCP/443], answers_in: ['2001:db8::/32']}]\n",
			get: func(c *Config) any {
				return []any{c.DNS.Upstreams[0].Zones[0], c.DNS.Names[0].Match, c.DNS.Names[0].Ports}
			},
			want: []any{"example.com", "**.api.example.com", []PortRange{{ProtoTCP, 443, 443}}},
		},
		{
			name: "answers_in is optional",
			yaml: "dns:\n  listen: [127.0.0.1:53]\n  upstreams: [{zones: [example.com], servers: [10.0.0.2]}]\n" +
				"  names: [{match: api.example.com, ports: [tcp/443]}, {match: b.example.com, ports: [tcp/443], answers_in: null}]\n",
			get: func(c *Config) any {
				return []any{c.DNS.Names[0].AnswersIn == nil, c.DNS.Names[1].AnswersIn == nil}
			},
			want: []any{true, true},
		},
		{
			name: "upstream port defaults to 53",
			yaml: "dns:\n  upstreams: [{zones: [corp], servers: [10.0.0.2, '[2001:db8::2]', '10.0.0.3:5353']}]\n",
			get:  func(c *Config) any { return c.DNS.Upstreams[0].Servers },
			want: []netip.AddrPort{
				netip.MustParseAddrPort("10.0.0.2:53"),
				netip.MustParseAddrPort("[2001:db8::2]:53"),
				netip.MustParseAddrPort("10.0.0.3:5353"),
			},
		},
		{
			name: "bare address is a host prefix",
			yaml: "endpoints: [{name: x, to: [192.0.2.1, '2001:db8::1'], ports: [udp/1-65535]}]\n",
			get:  func(c *Config) any { return c.Endpoints[0].To },
			want: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::1/128")},
		},
		{
			name: "sizes and durations",
			yaml: "spool: {max_bytes: 512MiB, max_age: 90m, when_full: reject}\ndns: {ttl: {max: 2m}}\n",
			get:  func(c *Config) any { return []any{c.Spool.MaxBytes, c.Spool.MaxAge, c.Spool.WhenFull, c.DNS.TTL} },
			want: []any{int64(512 << 20), 90 * time.Minute, "reject", TTL{Min: time.Minute, Max: 2 * time.Minute}},
		},
		{
			name: "plain integer size",
			yaml: "spool: {max_bytes: 1048576}\n",
			get:  func(c *Config) any { return c.Spool.MaxBytes },
			want: int64(1 << 20),
		},
		{
			name: "null sections and lists are empty",
			yaml: "interfaces:\n  vpn:\nproxy:\nendpoints:\n",
			get:  func(c *Config) any { return []any{c.Interfaces.VPN == nil, c.Proxy == nil, c.Endpoints == nil} },
			want: []any{true, true, true},
		},
		{
			name: "https forward without topic",
			yaml: "spool: {forward: {url: 'https://ingest.example.com/v1/records'}}\n",
			get:  func(c *Config) any { return *c.Spool.Forward },
			want: Forward{URL: "https://ingest.example.com/v1/records"},
		},
		{
			name: "metrics on a name",
			yaml: "metrics: {listen: 'localhost:9100'}\n",
			get:  func(c *Config) any { return c.Metrics.Listen },
			want: "localhost:9100",
		},
		{
			name: "metrics on every address",
			yaml: "metrics: {listen: ':9470'}\n",
			get:  func(c *Config) any { return c.Metrics.Listen },
			want: ":9470",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, tt.get(c), cmpNet); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	const data = `mode: block
interfaces:
  vpn: [wg0]
  lan: ["wg*"]
endpoints:
  - name: a
    to: [10.0.0.1/8]
    ports: [tcp/0]
metrics: {listen: nowhere}
`
	want := []string{
		"t.yaml:1:7: mode: \"block\" is not one of enforce, audit",
		"t.yaml:4:9: interfaces.lan[0]: lan pattern \"wg*\" overlaps vpn pattern \"wg0\" (interfaces.vpn[0], line 3): both match \"wg0\"; an interface has one role",
		"t.yaml:7:10: endpoints[0].to[0]: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
		"t.yaml:8:13: endpoints[0].ports[0]: \"tcp/0\": port 0 out of range 1-65535",
		"t.yaml:9:19: metrics.listen: \"nowhere\" is not host:port, e.g. 127.0.0.1:9470",
	}

	c, err := Parse("t.yaml", []byte(data))
	if c != nil {
		t.Errorf("Parse returned a Config with errors: %+v", c)
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse error is %T, want ErrorList: %v", err, err)
	}
	got := strings.Split(list.Error(), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}

	var one *Error
	if !errors.As(err, &one) || one.Field != "mode" {
		t.Errorf("errors.As(*Error) = %+v, want the mode error first", one)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Column: 7, Field: "dns.ttl", Msg: "bad"}, "a.yaml:3:7: dns.ttl: bad"},
		{Error{File: "a.yaml", Line: 3, Msg: "yaml syntax: x"}, "a.yaml:3: yaml syntax: x"},
		{Error{File: "a.yaml", Msg: "file is empty"}, "a.yaml: file is empty"},
	}

	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.err.Error()); diff != "" {
				t.Errorf("Error() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()

	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v, want a size error", err)
	}
}

// TestQueueSettings: the transparent mode's queue takes a number and a
// length; hex is fine for the number.
func TestQueueSettings(t *testing.T) {
	cfg, err := Parse("q.yaml", []byte("dns:\n  transparent: true\n  queue: {number: 0x10, length: 64}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Queue{Number: 16, Length: 64}); cfg.DNS.Queue != want {
		t.Errorf("queue %+v, want %+v", cfg.DNS.Queue, want)
	}
}
