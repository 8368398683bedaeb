package loader

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// BenchTarget names a program that Benchmark can run.
type BenchTarget int

const (
	// BenchEgress is the uplink egress program for Ethernet devices.
	BenchEgress BenchTarget = iota
	// BenchFloor is an empty program of the same type: the cost of
	// BPF_PROG_TEST_RUN itself.
	BenchFloor
)

// Benchmark runs a program repeat times on packet with BPF_PROG_TEST_RUN and
// returns the mean time per run and the program's return value. It goes
// through the live maps: counters grow, and first fragments are recorded.
func (l *Loader) Benchmark(target BenchTarget, packet []byte, repeat int) (time.Duration, uint32, error) {
	prog := l.objs.TCEgressEth
	if target == BenchFloor {
		floor, err := l.floorProgram()
		if err != nil {
			return 0, 0, err
		}
		prog = floor
	}

	ret, per, err := prog.Benchmark(packet, repeat, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("benchmark: %w", err)
	}
	return per, ret, nil
}

// floorProgram loads the empty program once.
func (l *Loader) floorProgram() (*ebpf.Program, error) {
	if l.floor != nil {
		return l.floor, nil
	}
	prog, err := ebpf.NewProgram(l.spec.Programs["tc_empty"])
	if err != nil {
		return nil, fmt.Errorf("load empty program: %w", err)
	}
	l.floor = prog
	return prog, nil
}
