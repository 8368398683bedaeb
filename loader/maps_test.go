package loader

import (
	"testing"

	"github.com/edgeward/edgeward/config"
)

// TestActivePolicyEntriesPerFamily: the settings of the active policy give
// the entries of each address family, which the metrics compare with
// MaxRules (a per-family limit).
func TestActivePolicyEntriesPerFamily(t *testing.T) {
	cfg := testPolicy(config.ModeEnforce)
	p, err := Compile(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	l := openTestLoader(t, nil)
	if err := l.ApplyPolicy(p); err != nil {
		t.Fatal(err)
	}

	got, ok, err := l.Maps().ActivePolicy()
	if err != nil || !ok {
		t.Fatalf("active policy: ok %v, err %v", ok, err)
	}
	if got.Entries4 != len(p.keys4) || got.Entries6 != len(p.keys6) {
		t.Errorf("entries per family %d/%d, want %d/%d", got.Entries4, got.Entries6, len(p.keys4), len(p.keys6))
	}
	if got.Entries4 == 0 || got.Entries6 == 0 {
		t.Errorf("test policy has entries of both families, got %d/%d", got.Entries4, got.Entries6)
	}
	if got.Entries != got.Entries4+got.Entries6 {
		t.Errorf("entries %d, want the sum %d", got.Entries, got.Entries4+got.Entries6)
	}
}
