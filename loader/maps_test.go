package loader

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/testenv"
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
	if got.Entries4 != len(p.entries[indexIPv4]) || got.Entries6 != len(p.entries[indexIPv6]) {
		t.Errorf("entries per family %d/%d, want %d/%d", got.Entries4, got.Entries6, len(p.entries[indexIPv4]), len(p.entries[indexIPv6]))
	}
	if got.Entries4 == 0 || got.Entries6 == 0 {
		t.Errorf("test policy has entries of both families, got %d/%d", got.Entries4, got.Entries6)
	}
	if got.Entries != got.Entries4+got.Entries6 {
		t.Errorf("entries %d, want the sum %d", got.Entries, got.Entries4+got.Entries6)
	}
}

// TestOpenRetiresEarlierPolicyMaps: pins of the maps that held the policy
// before the tables (as a version before them left them) do not stop Open,
// which reads the generation of their active policy (again after a start
// that ended early); RemoveRetiredPins removes them and leaves the maps
// both versions share in place.
func TestOpenRetiresEarlierPolicyMaps(t *testing.T) {
	root := testenv.BPFFS(t) + "/edgeward"
	pins := newPinLayout(root)
	if err := os.MkdirAll(pins.maps, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range retiredMaps {
		size := uint32(12) // any settings size will do; the slot word is 4 bytes
		if name == "ew_active" {
			size = 4
		}
		m, err := ebpf.NewMap(&ebpf.MapSpec{Name: name, Type: ebpf.Array, KeySize: 4, ValueSize: size, MaxEntries: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Pin(filepath.Join(pins.maps, name)); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	// Slot 1 is active, with generation 7.
	putRetired(t, pins, "ew_active", 0, binary.NativeEndian.AppendUint32(nil, 1))
	putRetired(t, pins, "ew_policy_settings", 1, binary.NativeEndian.AppendUint32(nil, 7))

	for range 2 { // a start that fails before RemoveRetiredPins loses nothing
		l, err := Open(Options{PinPath: root})
		if err != nil {
			t.Fatalf("open over an earlier version's pins: %v", err)
		}
		if got := l.RetiredGeneration(); got != 7 {
			t.Errorf("retired generation %d, want 7", got)
		}
		l.Close()
	}

	l, err := Open(Options{PinPath: root})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.RemoveRetiredPins(); err != nil {
		t.Fatal(err)
	}
	for _, name := range retiredMaps {
		if _, err := os.Stat(filepath.Join(pins.maps, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pin of retired map %s: %v, want it gone", name, err)
		}
	}
	for _, name := range pinnedMaps {
		if _, err := os.Stat(filepath.Join(pins.maps, name)); err != nil {
			t.Errorf("pin of %s: %v", name, err)
		}
	}
}

// putRetired writes value (padded to the map's value size) at key of a
// pinned map.
func putRetired(t *testing.T, pins pinLayout, name string, key uint32, value []byte) {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(pins.maps, name), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	padded := make([]byte, m.ValueSize())
	copy(padded, value)
	if err := m.Put(key, padded); err != nil {
		t.Fatal(err)
	}
}

// TestCompileRefusesMoreEndpointsThanIndices: endpoint numbers are 16 bits
// and the top two name the proxy and the gateway's services, so a policy
// with more endpoints than that is refused rather than misattributed.
func TestCompileRefusesMoreEndpointsThanIndices(t *testing.T) {
	cfg := &config.Config{Mode: config.ModeEnforce}
	for i := range MaxEndpoints + 1 {
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{
			Name:  "e",
			To:    []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)},
			Ports: []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}},
		})
	}
	if _, err := Compile(cfg, 1); !errors.Is(err, ErrPolicyTooLarge) {
		t.Fatalf("%d endpoints: got %v, want ErrPolicyTooLarge", len(cfg.Endpoints), err)
	}
	if _, err := Compile(&config.Config{Endpoints: cfg.Endpoints[:MaxEndpoints]}, 1); err != nil {
		t.Fatalf("%d endpoints: %v", MaxEndpoints, err)
	}
}
