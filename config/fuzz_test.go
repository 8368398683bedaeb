package config

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, and that it returns either a
// Config or a non-empty ErrorList of well-formed problems.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("interfaces: {vpn: ['[a-c]*x?'], lan: ['*y'], ignore: ['x*[^0-9]']}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("? [a]\n: b\n"))
	f.Add([]byte("dns: {names: [{match: '**.a'}], upstreams: [{zones: [a], servers: ['[::1]']}]}\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err == nil {
			checkConfig(t, c)
			return
		}

		var list ErrorList
		if c != nil || !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("Parse = %v, %v (%T); want nil and a non-empty ErrorList", c, err, err)
		}
		for _, e := range list {
			if e.File != "f.yaml" || e.Msg == "" || e.Line < 0 || e.Column < 0 {
				t.Fatalf("malformed problem %#v", e)
			}
		}
	})
}

// checkConfig checks invariants every parsed Config keeps.
func checkConfig(t *testing.T, c *Config) {
	t.Helper()

	if c.Mode != ModeEnforce && c.Mode != ModeAudit {
		t.Fatalf("mode %q", c.Mode)
	}
	for _, patterns := range [][]string{c.Interfaces.VPN, c.Interfaces.LAN, c.Interfaces.Ignore} {
		for _, p := range patterns {
			if _, err := path.Match(p, "x"); err != nil {
				t.Fatalf("pattern %q accepted but path.Match rejects it: %v", p, err)
			}
		}
	}
	_ = c.Classify("eth0")

	for _, e := range c.Endpoints {
		if e.Name == "" || len(e.To) == 0 || len(e.Ports) == 0 {
			t.Fatalf("incomplete endpoint %+v", e)
		}
		for _, pfx := range e.To {
			if pfx != pfx.Masked() || pfx.Addr().Is4In6() || pfx.Bits() == 0 {
				t.Fatalf("endpoint prefix %s breaks an invariant", pfx)
			}
		}
	}
	if c.DNS.TTL.Min <= 0 || c.DNS.TTL.Min > c.DNS.TTL.Max || c.Spool.MaxBytes <= 0 || c.Spool.MaxAge <= 0 {
		t.Fatalf("bounds broken: ttl %+v, spool %d %s", c.DNS.TTL, c.Spool.MaxBytes, c.Spool.MaxAge)
	}
}
