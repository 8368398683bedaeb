package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in   string
		want PortRange
		err  string
	}{
		{in: "tcp/443", want: PortRange{ProtoTCP, 443, 443}},
		{in: "udp/51820", want: PortRange{ProtoUDP, 51820, 51820}},
		{in: "tcp/8000-8100", want: PortRange{ProtoTCP, 8000, 8100}},
		{in: "TCP/1-65535", want: PortRange{ProtoTCP, 1, 65535}},
		{in: "Udp/53-53", want: PortRange{ProtoUDP, 53, 53}},
		{in: "tcp/0443", want: PortRange{ProtoTCP, 443, 443}},
		{in: "tcp/0", err: "port 0 out of range"},
		{in: "tcp/65536", err: "port 65536 out of range"},
		{in: "tcp/100000", err: "is not a number"},
		{in: "tcp/8100-8000", err: "range is reversed"},
		{in: "icmp/8", err: `unknown protocol "icmp"`},
		{in: "443", err: "want proto/port"},
		{in: "tcp/", err: "want proto/port"},
		{in: "/443", err: "want proto/port"},
		{in: "tcp/443-", err: "is not a number"},
		{in: "tcp/-443", err: "is not a number"},
		{in: "tcp/+443", err: "is not a number"},
		{in: "tcp/ 443", err: "is not a number"},
		{in: "tcp/1-2-3", err: "is not a number"},
		{in: "tcp/443/udp", err: "is not a number"},
	}

	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePortRange(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParsePortRange(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePortRange(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParsePortRange(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestPortRangeString(t *testing.T) {
	want := []string{"tcp/443", "udp/8000-8100", "proto(1)/7"}
	got := []string{
		PortRange{ProtoTCP, 443, 443}.String(),
		PortRange{ProtoUDP, 8000, 8100}.String(),
		PortRange{1, 7, 7}.String(),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String mismatch (-want +got):\n%s", diff)
	}

	r := PortRange{ProtoTCP, 8000, 8100}
	contains := []bool{r.Contains(ProtoTCP, 8000), r.Contains(ProtoTCP, 8100), r.Contains(ProtoTCP, 7999),
		r.Contains(ProtoUDP, 8050)}
	if diff := cmp.Diff([]bool{true, true, false, false}, contains); diff != "" {
		t.Errorf("Contains mismatch (-want +got):\n%s", diff)
	}
}

func TestPortSetOverlap(t *testing.T) {
	_, err := Parse("p.yaml", []byte("interfaces: {lan_services: [tcp/22, udp/22, tcp/8000-8100, tcp/8100]}\n"))
	if err == nil || !strings.Contains(err.Error(), "lan_services[3]: port set tcp/8100 overlaps tcp/8000-8100") {
		t.Errorf("Parse = %v, want an overlap error at lan_services[3]", err)
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  string
	}{
		{in: "10.20.8.0/24", want: "10.20.8.0/24"},
		{in: "2001:db8:20::/64", want: "2001:db8:20::/64"},
		{in: "192.0.2.7", want: "192.0.2.7/32"},
		{in: "2001:db8::7", want: "2001:db8::7/128"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "10.20.8.1/24", err: "host bits set; did you mean 10.20.8.0/24?"},
		{in: "2001:db8::1/64", err: "did you mean 2001:db8::/64?"},
		{in: "::ffff:10.0.0.0/104", err: "write the IPv4 form 10.0.0.0/8"},
		{in: "::ffff:10.0.0.1", err: "write the IPv4 form 10.0.0.1"},
		{in: "::ffff:0:0/95", err: "list the IPv4 and IPv6 ranges separately"},
		{in: "fe80::1%eth0", err: "zones"},
		{in: "10.0.0.0/33", err: "is not a CIDR"},
		{in: "10.0.0/8", err: "is not a CIDR"},
		{in: "example.com", err: "is not an IP address"},
	}

	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefix(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseAddrPort(t *testing.T) {
	tests := []struct {
		in      string
		defPort uint16
		want    string
		err     string
	}{
		{in: "127.0.0.1:53", want: "127.0.0.1:53"},
		{in: "[2001:db8::1]:53", want: "[2001:db8::1]:53"},
		{in: "10.0.0.2", defPort: 53, want: "10.0.0.2:53"},
		{in: "2001:db8::2", defPort: 53, want: "[2001:db8::2]:53"},
		{in: "[2001:db8::2]", defPort: 53, want: "[2001:db8::2]:53"},
		{in: "10.0.0.2:5353", defPort: 53, want: "10.0.0.2:5353"},
		{in: "10.0.0.2", err: "is not ip:port"},
		{in: "10.0.0.2:0", err: "port must be 1-65535"},
		{in: "10.0.0.2:", err: "is not ip:port"},
		{in: "[10.0.0.2]", defPort: 53, err: "is not an address"},
		{in: "[::ffff:10.0.0.2]:53", err: "write the IPv4 form 10.0.0.2:53"},
		{in: "dns.example.com:53", err: "is not ip:port"},
	}

	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddrPort(tt.in, tt.defPort)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseAddrPort(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != netip.MustParseAddrPort(tt.want) {
				t.Errorf("ParseAddrPort(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{in: "1GiB", want: 1 << 30},
		{in: "512MiB", want: 512 << 20},
		{in: "100MB", want: 100e6},
		{in: "4 KiB", want: 4096},
		{in: "1TiB", want: 1 << 40},
		{in: "123", want: 123},
		{in: "7B", want: 7},
		{in: "1.5GiB", err: "unknown unit"},
		{in: "1gib", err: "unknown unit"},
		{in: "-1", err: "is not a size"},
		{in: "GiB", err: "is not a size"},
		{in: "", err: "is not a size"},
		{in: "9223372036854775807", want: 9223372036854775807},
		{in: "9223372036854775808", err: "too large"},
		{in: "8388608TiB", err: "too large"},
	}

	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCanonicalName(t *testing.T) {
	tests := []struct {
		in       string
		wildcard bool
		want     string
		err      string
	}{
		{in: "S3.EU-West-1.amazonaws.com.", want: "s3.eu-west-1.amazonaws.com"},
		{in: "*.iot.example.com", wildcard: true, want: "*.iot.example.com"},
		{in: "**.Example.com.", wildcard: true, want: "**.example.com"},
		{in: "_mqtt._tcp.example.com", want: "_mqtt._tcp.example.com"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "local", want: "local"},
		{in: "*.example.com", err: "wildcards are not allowed here"},
		{in: "a.*.example.com", wildcard: true, err: "whole leftmost label"},
		{in: "*a.example.com", wildcard: true, err: "whole leftmost label"},
		{in: "***.example.com", wildcard: true, err: "whole leftmost label"},
		{in: "*", wildcard: true, err: "needs a zone"},
		{in: "**.", wildcard: true, err: "needs a zone"},
		{in: ".", err: "empty name"},
		{in: "", err: "empty name"},
		{in: "a..b", err: "empty label"},
		{in: ".a.b", err: "empty label"},
		{in: "a.b..", err: "empty label"},
		{in: "-a.example", err: "begins or ends with '-'"},
		{in: "a b.example", err: "use letters, digits"},
		{in: "bücher.example", want: "xn--bcher-kva.example"},
		{in: "*.BÜCHER.example", wildcard: true, want: "*.xn--bcher-kva.example"},
		{in: "a\u200db.example", err: "not a valid internationalised name"},
		{in: strings.Repeat("a", 64) + ".example", err: "at most 63"},
		{in: strings.Repeat("a.", 127) + "ab", err: "at most 253"},
		{in: strings.Repeat("a.", 126) + "a.", want: strings.Repeat("a.", 126) + "a"},
	}

	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := CanonicalName(tt.in, tt.wildcard)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("CanonicalName(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("CanonicalName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
