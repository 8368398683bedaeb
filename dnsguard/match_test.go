package dnsguard

import (
	"testing"

	"github.com/edgeward/edgeward/config"
	"github.com/google/go-cmp/cmp"
)

func TestMatcher(t *testing.T) {
	names := []config.Name{
		{Match: "*.x"},
		{Match: "**.y"},
		{Match: "y.z"},
		{Match: "*.y.z"},
		{Match: "**.y.z"},
		{Match: "exact.w"},
		{Match: "*.w"},
		{Match: "xn--mnchen-3ya.de"},
	}
	m, err := NewMatcher(names)
	if err != nil {
		t.Fatalf("NewMatcher: %v", err)
	}

	tests := []struct {
		name string
		want string // pattern; "" for no match
	}{
		{"a.x", "*.x"},
		{"a.x.", "*.x"},
		{"A.X.", "*.x"},
		{"x", ""},
		{"x.", ""},
		{"a.b.x", ""},
		{"evilx", ""},
		{"a.evilx", ""},
		{"ax", ""},
		{"a.y", "**.y"},
		{"a.b.c.y", "**.y"},
		{"y", ""},
		{"a.evily", ""},
		{"y.z", "y.z"},
		{"Y.Z.", "y.z"},
		{"a.y.z", "*.y.z"},
		{"a.b.y.z", "**.y.z"},
		{"exact.w", "exact.w"},
		{"other.w", "*.w"},
		{"xn--mnchen-3ya.de", "xn--mnchen-3ya.de"},
		{"XN--MNCHEN-3YA.DE.", "xn--mnchen-3ya.de"},
		{`a\.b.x.`, ""},
		{`evil\.x.`, ""},
		{`a\032.x.`, ""},
		{"a..x", ""},
		{".a.x", ""},
		{"a.x..", ""},
		{"", ""},
		{".", ""},
		{"*.x", ""},
		{"münchen.de", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if r := m.Match(tt.name); r != nil {
				got = r.Pattern
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Match(%q) (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestNewMatcherErrors(t *testing.T) {
	tests := []struct {
		name  string
		names []config.Name
		want  string
	}{
		{"wildcard inside", []config.Name{{Match: "a.*.x"}}, `dns name 0 ("a.*.x"): a wildcard may only be the whole leftmost label: "*.zone" or "**.zone"`},
		{"partial wildcard", []config.Name{{Match: "a*.x"}}, `dns name 0 ("a*.x"): a wildcard may only be the whole leftmost label: "*.zone" or "**.zone"`},
		{"twice by case", []config.Name{{Match: "a.x"}, {Match: "A.X."}}, `dns name 1 ("A.X."): pattern "a.x" is listed twice`},
		{"empty", []config.Name{{Match: ""}}, `dns name 0 (""): empty name (the root zone cannot be listed)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMatcher(tt.names)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
