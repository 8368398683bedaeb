package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestInvalidFiles parses every file in testdata/invalid and expects
// exactly one problem, at the given position and field.
func TestInvalidFiles(t *testing.T) {
	tests := []struct {
		file      string
		line, col int
		field     string
		msg       string
	}{
		{"alias.yaml", 7, 12, "", "aliases (*web) are not supported"},
		{"bad_cidr.yaml", 3, 10, "endpoints[0].to[0]", `"10.20.8.0/33" is not a CIDR`},
		{"bad_deny_response.yaml", 2, 18, "dns.deny_response", `"servfail" is not one of refused, nxdomain`},
		{"bad_dns_pattern.yaml", 7, 14, "dns.names[0].match", "wildcard may only be the whole leftmost label"},
		{"bad_forward_proxy.yaml", 4, 12, "spool.forward.proxy", "must be an http:// URL"},
		{"bad_metrics.yaml", 2, 11, "metrics.listen", "is not host:port"},
		{"bad_mode.yaml", 1, 7, "mode", `"block" is not one of enforce, audit`},
		{"bad_pattern.yaml", 2, 9, "interfaces.lan[0]", "unterminated character class"},
		{"bad_port.yaml", 4, 23, "endpoints[0].ports[1]", "port 70000 out of range 1-65535"},
		{"bad_proto.yaml", 4, 13, "endpoints[0].ports[0]", `unknown protocol "sctp" (want tcp or udp)`},
		{"bad_proxy.yaml", 2, 12, "proxy.address", `"192.0.2.10" is not ip:port`},
		{"bad_size.yaml", 2, 14, "spool.max_bytes", `unknown unit ".5GiB"`},
		{"bad_topic.yaml", 4, 12, "spool.forward.topic", "the only placeholder is {stream}"},
		{"bad_ttl.yaml", 2, 14, "dns.ttl.min", "min 2h0m0s is greater than max 1h0m0s"},
		{"bad_upstream_zone.yaml", 3, 15, "dns.upstreams[0].zones[0]", "wildcards are not allowed here"},
		{"bad_when_full.yaml", 3, 14, "spool.when_full", `"block" is not one of drop_oldest, reject`},
		{"default_route.yaml", 4, 9, "endpoints[0].to[0]", "0.0.0.0/0 would open these ports to every address"},
		{"duplicate_endpoint_name.yaml", 8, 11, "endpoints[2].name", `"s3-private" is used twice: at line 2 and line 8`},
		{"duplicate_key.yaml", 4, 1, "mode", `key "mode" given twice (first at line 1)`},
		{"duplicate_pattern.yaml", 2, 22, "interfaces.vpn[2]", `"wg0" is already listed at interfaces.vpn[0] (line 2)`},
		{"duplicate_port.yaml", 7, 9, "endpoints[0].ports[2]", "duplicate port set tcp/443 (already at line 5)"},
		{"empty.yaml", 0, 0, "", "file is empty"},
		{"empty_answers_in.yaml", 9, 19, "dns.names[0].answers_in", "must list at least one entry"},
		{"empty_pattern.yaml", 3, 15, "interfaces.lan[1]", "empty pattern"},
		{"endpoint_missing_to.yaml", 2, 5, "endpoints[0].to", "missing (required)"},
		{"host_bits.yaml", 3, 24, "endpoints[0].to[1]", "host bits set; did you mean 10.30.8.0/24?"},
		{"listen_clash.yaml", 4, 28, "spool.listen[1]", "127.0.0.1:8470 is already used by dns.listen[0] (line 2)"},
		{"lo_listed.yaml", 2, 12, "interfaces.ignore[0]", `"lo" is always the loopback interface`},
		{"mapped_prefix.yaml", 3, 10, "endpoints[0].to[0]", "IPv4-mapped IPv6 prefix; write the IPv4 form 10.20.8.0/24"},
		{"name_outside_zone.yaml", 7, 14, "dns.names[0].match", "is in no upstream zone"},
		{"nested_prefix.yaml", 3, 24, "endpoints[0].to[1]", "10.20.8.0/24 overlaps 10.20.0.0/16"},
		{"non_ascii_name.yaml", 7, 14, "dns.names[0].match", "not a valid internationalised name"},
		{"only_comments.yaml", 0, 0, "", "file is empty"},
		{"overlapping_patterns.yaml", 4, 19, "interfaces.ignore[1]", `ignore pattern "t*0" overlaps vpn pattern "tun*" (interfaces.vpn[1], line 2): both match "tun0"`},
		{"pattern_matches_all.yaml", 2, 9, "interfaces.vpn[0]", "matches every interface, so nothing would be enforced"},
		{"plain_mqtt.yaml", 3, 10, "spool.forward.url", "mqtt:// would send telemetry unencrypted"},
		{"port_range_reversed.yaml", 2, 18, "interfaces.lan_services[0]", "range is reversed (first 8100 > last 8000); write tcp/8000-8100"},
		{"queue_out_of_range.yaml", 4, 13, "dns.queue.number", "70000 is not a whole number from 0 to 65535"},
		{"queue_wrong_type.yaml", 4, 13, "dns.queue.length", `expected a whole number, got the string "lots"`},
		{"relative_path.yaml", 3, 10, "paths.state", `"var/lib/edgeward" is not an absolute path`},
		{"syntax_error.yaml", 3, 0, "", "yaml syntax: did not find expected ',' or ']'"},
		{"tls_cert_without_key.yaml", 6, 13, "spool.forward.tls.key", "cert is set without key"},
		{"ttl_no_unit.yaml", 3, 10, "dns.ttl.min", "60 has no unit"},
		{"two_documents.yaml", 2, 1, "", "more than one YAML document"},
		{"unknown_key_nested.yaml", 5, 5, "dns.ttl.maxx", `unknown key "maxx" (did you mean "max"?); allowed: min, max`},
		{"unknown_key_top.yaml", 2, 1, "modee", `unknown key "modee" (did you mean "mode"?); allowed: mode, interfaces, endpoints`},
		{"wrong_type.yaml", 3, 16, "dns.transparent", `expected true or false, got the string "yes"`},
		{"wrong_type_list.yaml", 2, 3, "endpoints", "expected a list"},
	}

	checkEveryFileListed(t, len(tests), func(name string) bool {
		for _, tt := range tests {
			if tt.file == name {
				return true
			}
		}
		return false
	})

	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "invalid", tt.file)
			c, err := Load(path)
			if c != nil {
				t.Errorf("Load returned a Config along with the error")
			}

			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Load(%s) = %v (%T), want an ErrorList", path, err, err)
			}
			if len(list) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(list), list)
			}

			got := *list[0]
			if !strings.Contains(got.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", got.Msg, tt.msg)
			}
			want := Error{File: path, Line: tt.line, Column: tt.col, Field: tt.field, Msg: got.Msg}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("problem mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// checkEveryFileListed fails when a file in testdata/invalid has no table
// entry, or the table names more files than exist.
func checkEveryFileListed(t *testing.T, entries int, listed func(string) bool) {
	t.Helper()

	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !listed(filepath.Base(f)) {
			t.Errorf("%s has no entry in the table", f)
		}
	}
	if len(files) != entries {
		t.Errorf("testdata/invalid has %d files, the table %d entries", len(files), entries)
	}
}
