package dnsguard

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPinner(t *testing.T) {
	pinned := &Rule{Pattern: "p", AnswersIn: prefixes("10.20.0.0/16", "2001:db8:20::/48")}
	open := &Rule{Pattern: "o"}
	p := pinner{lan: prefixes("198.51.100.0/24", "2001:db8:99::/48")}

	tests := []struct {
		rule *Rule
		addr string
		want string
	}{
		{pinned, "10.20.3.4", ""},
		{pinned, "2001:db8:20::1", ""},
		{pinned, "10.21.0.1", ReasonPrivateAnswer},
		{pinned, "203.0.113.7", ReasonPublicAnswer},
		{pinned, "2001:db8:21::1", ReasonPublicAnswer},
		{open, "203.0.113.7", ""},
		{open, "2001:db8:21::1", ""},
		{open, "10.0.0.1", ReasonPrivateAnswer},
		{open, "172.16.0.1", ReasonPrivateAnswer},
		{open, "192.168.0.1", ReasonPrivateAnswer},
		{open, "127.0.0.1", ReasonPrivateAnswer},
		{open, "169.254.1.1", ReasonPrivateAnswer},
		{open, "100.64.0.1", ReasonPrivateAnswer},
		{open, "100.127.255.255", ReasonPrivateAnswer},
		{open, "100.128.0.1", ""},
		{open, "0.0.0.0", ReasonPrivateAnswer},
		{open, "224.0.0.1", ReasonPrivateAnswer},
		{open, "255.255.255.255", ReasonPrivateAnswer},
		{open, "::", ReasonPrivateAnswer},
		{open, "::1", ReasonPrivateAnswer},
		{open, "fe80::1", ReasonPrivateAnswer},
		{open, "fc00::1", ReasonPrivateAnswer},
		{open, "fd12::1", ReasonPrivateAnswer},
		{open, "ff02::1", ReasonPrivateAnswer},
		{open, "198.51.100.7", ReasonPrivateAnswer},
		{open, "2001:db8:99::7", ReasonPrivateAnswer},
		{open, "64:ff9b::10.1.2.3", ReasonPrivateAnswer},
		{open, "64:ff9b::203.0.113.7", ""},
		{pinned, "127.0.0.1", ReasonPrivateAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.rule.Pattern+"/"+tt.addr, func(t *testing.T) {
			got := p.check(tt.rule, netip.MustParseAddr(tt.addr).Unmap())
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("check (-want +got):\n%s", diff)
			}
		})
	}
}
