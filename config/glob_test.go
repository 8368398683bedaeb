package config

import (
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseGlobErrors(t *testing.T) {
	tests := []struct {
		pattern string
		err     string // "" when valid
	}{
		{"wg0", ""},
		{"tun*", ""},
		{"eth[0-3]", ""},
		{"eth[^0-3]", ""},
		{`eth\*`, ""},
		{`[\]]`, ""},
		{"[*]x", ""},
		{"a]", ""},
		{"eth[0-", "unterminated character class"},
		{"eth[", "unterminated character class"},
		{"eth[]", `']' must be escaped`},
		{"eth[-a]", `'-' must be escaped`},
		{"eth[a-]", `range a- has no end`},
		{"eth[9-0]", "empty range 9-0"},
		{"eth[!0]", `"[!" does not negate here`},
		{`eth\`, "lone backslash"},
		{"eth 0", "control character or space"},
		{"eth/0", `'/' cannot appear`},
		{"eth:0", `':' cannot appear`},
		{"ethé", "non-ASCII"},
	}

	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := parseGlob(tt.pattern)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("parseGlob(%q) = %v, want success", tt.pattern, err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("parseGlob(%q) = %v, want error containing %q", tt.pattern, err, tt.err)
			}
		})
	}
}

func TestGlobMatchAgreesWithPathMatch(t *testing.T) {
	patterns := []string{"wg0", "wg*", "*0", "t*0", "e?h[0-3]", "eth[^0-3]*", `a\*`, "*a*b*", "[a-c][x-z]?", "??"}
	names := []string{"wg0", "wg", "wg10", "tun0", "t0", "eth0", "eth4", "eth9x", "a*", "ab", "xaybz", "by?", "cz1", "a"}

	for _, p := range patterns {
		g, err := parseGlob(p)
		if err != nil {
			t.Fatalf("parseGlob(%q): %v", p, err)
		}
		for _, n := range names {
			want, _ := path.Match(p, n)
			if got := g.match(n); got != want {
				t.Errorf("glob %q match %q = %v, path.Match says %v", p, n, got, want)
			}
		}
	}
}

func TestIntersect(t *testing.T) {
	tests := []struct {
		a, b    string
		overlap bool
	}{
		{"wg0", "wg*", true},
		{"tun*", "t*0", true},
		{"wg*", "tun*", false},
		{"eth0", "eth0", true},
		{"eth[0-3]", "eth[4-9]", false},
		{"eth[0-3]", "eth[^0-2]", true},
		{"[abc]", "[^abc]", false},
		{"*a", "b*", true},
		{"?", "??", false},
		{"*x*", "*y*", true},
		{"wwan*", "wlan*", false},
		{"*.100", "eth0*", true},
		{`eth\?`, "eth?", true},
		{`eth\?`, "eth0", false},
		// Names have at most 15 characters: 7 a's and 8 b's fit, 8 and 8 do not.
		{"*a*a*a*a*a*a*a*", "*b*b*b*b*b*b*b*b*", true},
		{"*a*a*a*a*a*a*a*a*", "*b*b*b*b*b*b*b*b*", false},
		{"a??????????????", "*b", true},
	}

	for _, tt := range tests {
		t.Run(tt.a+" vs "+tt.b, func(t *testing.T) {
			a, b := mustGlob(t, tt.a), mustGlob(t, tt.b)

			name, ok := intersect(a, b)
			if ok != tt.overlap {
				t.Fatalf("intersect(%q, %q) = %q, %v; want %v", tt.a, tt.b, name, ok, tt.overlap)
			}
			if ok {
				checkWitness(t, name, tt.a, tt.b)
			}

			name2, ok2 := intersect(b, a)
			if ok2 != ok {
				t.Errorf("intersect is not symmetric: (%q, %v) reversed gives (%q, %v)", name, ok, name2, ok2)
			}
		})
	}
}

func TestMatchesAll(t *testing.T) {
	tests := []struct {
		pattern string
		all     bool
	}{
		{"*", true},
		{"?*", true},
		{"*?", true},
		{"*?*", true},
		{"[^a]*", false},
		{"a*", false},
		{"??*", false},
		{"*a*", false},
		{"wg0", false},
	}

	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			name, all := mustGlob(t, tt.pattern).matchesAll()
			if all != tt.all {
				t.Fatalf("matchesAll(%q) = %q, %v; want %v", tt.pattern, name, all, tt.all)
			}
			if !all {
				if m, _ := path.Match(tt.pattern, name); m || !validIfName(name) {
					t.Errorf("counterexample %q is not a name that %q misses", name, tt.pattern)
				}
			}
		})
	}
}

func TestCheckPattern(t *testing.T) {
	tests := []struct {
		pattern string
		err     string
	}{
		{"wg0", ""},
		{"l*", ""},
		{"", "empty pattern"},
		{"lo", "loopback"},
		{"l[o]", "loopback"},
		{"*", "matches every interface"},
		{"?*", "matches every interface"},
		{"abcdefghijklmnop", "needs at least 16 characters"},
		{"eth[/]", "matches no interface name"},
		{"x[", "invalid pattern"},
	}

	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := checkPattern(tt.pattern)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("checkPattern(%q) = %v, want success", tt.pattern, err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("checkPattern(%q) = %v, want error containing %q", tt.pattern, err, tt.err)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	c, err := Parse("c.yaml", []byte(`
interfaces:
  vpn: [wg0, "tun*"]
  lan: ["lan[0-9]", "br-ot"]
  ignore: [mgmt0]
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	tests := map[string]Role{
		"lo":     RoleLoopback,
		"wg0":    RoleVPN,
		"wg1":    RoleUplink,
		"tun":    RoleVPN,
		"tun12":  RoleVPN,
		"lan3":   RoleLAN,
		"lan10":  RoleUplink,
		"br-ot":  RoleLAN,
		"mgmt0":  RoleIgnore,
		"wwan0":  RoleUplink,
		"eth0.7": RoleUplink,
		"":       RoleUplink,
	}
	got := map[string]Role{}
	for name := range tests {
		got[name] = c.Classify(name)
	}
	if diff := cmp.Diff(tests, got); diff != "" {
		t.Errorf("Classify mismatch (-want +got):\n%s", diff)
	}

	var none *Config
	if r := none.Classify("eth0"); r != RoleUplink {
		t.Errorf("nil Config: Classify(eth0) = %v, want uplink", r)
	}
}

func TestRoleString(t *testing.T) {
	want := []string{"uplink", "vpn", "lan", "ignore", "loopback", "role(9)"}
	got := []string{RoleUplink.String(), RoleVPN.String(), RoleLAN.String(), RoleIgnore.String(),
		RoleLoopback.String(), Role(9).String()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Role.String mismatch (-want +got):\n%s", diff)
	}
}

// mustGlob parses a pattern the test knows to be valid.
func mustGlob(t *testing.T, p string) glob {
	t.Helper()

	g, err := parseGlob(p)
	if err != nil {
		t.Fatalf("parseGlob(%q): %v", p, err)
	}
	return g
}

// checkWitness fails unless name is an interface name both patterns match.
func checkWitness(t *testing.T, name string, patterns ...string) {
	t.Helper()

	if !validIfName(name) {
		t.Errorf("witness %q is not a valid interface name", name)
	}
	for _, p := range patterns {
		if m, err := path.Match(p, name); !m || err != nil {
			t.Errorf("witness %q does not match %q (err %v)", name, p, err)
		}
	}
}

// validIfName reports whether s is a name the overlap check considers.
func validIfName(s string) bool {
	if len(s) < 1 || len(s) > maxIfName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ifChars.has(s[i]) {
			return false
		}
	}
	return true
}

// FuzzGlob checks the pattern compiler and the overlap search against
// path.Match, which Classify uses.
func FuzzGlob(f *testing.F) {
	f.Add("tun*", "t*0", "tun0")
	f.Add("eth[0-3]", "eth[^0-2]", "eth3")
	f.Add(`a\*`, "*", "a*")
	f.Add("[a-]", "[]]", "]")

	f.Fuzz(func(t *testing.T, a, b, name string) {
		ga, errA := parseGlob(a)
		if _, err := path.Match(a, "x"); err != nil && errA == nil {
			t.Fatalf("parseGlob accepts %q, path.Match rejects it: %v", a, err)
		}
		if errA != nil {
			return
		}

		if validIfName(name) {
			want, _ := path.Match(a, name)
			if got := ga.match(name); got != want {
				t.Fatalf("glob %q match %q = %v, path.Match %v", a, name, got, want)
			}
		}
		gb, err := parseGlob(b)
		if err != nil || ga.minLen() > maxIfName || gb.minLen() > maxIfName {
			return
		}

		w, ok := intersect(ga, gb)
		if ok {
			checkWitness(t, w, a, b)
		}
		ma, _ := path.Match(a, name)
		mb, _ := path.Match(b, name)
		if !ok && validIfName(name) && ma && mb {
			t.Fatalf("intersect(%q, %q) found nothing, but both match %q", a, b, name)
		}
	})
}
