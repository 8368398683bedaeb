package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/edgeward/edgeward/internal/testenv"
)

// objectPath is the BPF object the loader embeds. EDGEWARD_BPF_OBJECT
// overrides it; the kernel matrix sets it, because a test binary in a guest
// has no source tree beside it.
func objectPath() string {
	if p := os.Getenv("EDGEWARD_BPF_OBJECT"); p != "" {
		return p
	}
	return filepath.Join("..", "..", "loader", "edgeward_bpfel.o")
}

// verifierStats are the verifier's figures for one program.
type verifierStats struct {
	insns  int // instructions processed
	states int // total states
}

// statsLine is the summary the verifier writes with BPF_LOG_STATS, e.g.
// "processed 1234 insns (limit 1000000) max_states_per_insn 4
// total_states 98 peak_states 98 mark_read 12".
var statsLine = regexp.MustCompile(`processed (\d+) insns .*total_states (\d+)`)

// parseVerifierStats finds the summary line in a verifier log.
func parseVerifierStats(log string) (verifierStats, error) {
	m := statsLine.FindStringSubmatch(log)
	if m == nil {
		return verifierStats{}, fmt.Errorf("no \"processed N insns ... total_states M\" in the verifier log %q", log)
	}
	insns, _ := strconv.Atoi(m[1])
	states, _ := strconv.Atoi(m[2])
	return verifierStats{insns: insns, states: states}, nil
}

func TestParseVerifierStats(t *testing.T) {
	log := "func#0 @0\nverification time 3012 usec\nstack depth 96\n" +
		"processed 4711 insns (limit 1000000) max_states_per_insn 5 total_states 321 peak_states 300 mark_read 40\n"
	got, err := parseVerifierStats(log)
	if err != nil {
		t.Fatal(err)
	}
	if want := (verifierStats{insns: 4711, states: 321}); got != want {
		t.Errorf("parseVerifierStats = %+v, want %+v", got, want)
	}

	if _, err := parseVerifierStats("verification time 12 usec\n"); err == nil {
		t.Error("parseVerifierStats accepted a log without the summary line")
	}
}

// TestVerifierStats loads every program of the loader's object into this
// kernel with the verifier's statistics on, and logs them for the kernel
// matrix. It fails when a program does not load.
func TestVerifierStats(t *testing.T) {
	testenv.RequireRoot(t)

	spec, err := ebpf.LoadCollectionSpec(objectPath())
	if err != nil {
		t.Fatalf("read the loader's BPF object: %v", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
	})
	if err != nil {
		t.Fatalf("load the loader's programs: %v", err)
	}
	defer coll.Close()

	names := make([]string, 0, len(coll.Programs))
	for name := range coll.Programs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		stats, err := parseVerifierStats(coll.Programs[name].VerifierLog)
		if err != nil {
			t.Errorf("program %s: %v", name, err)
			continue
		}
		t.Logf("verifier: %s insns=%d states=%d", name, stats.insns, stats.states)
	}
}
