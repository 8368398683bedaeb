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
	// BenchFloor is an empty tc program: the cost of BPF_PROG_TEST_RUN
	// itself.
	BenchFloor
	// BenchXDPUplink is the uplink ingress program.
	BenchXDPUplink
	// BenchXDPLAN is the LAN program; it needs the index of a LAN
	// interface in the caller's network namespace for its FIB lookups.
	BenchXDPLAN
	// BenchXDPFloor is an empty XDP program.
	BenchXDPFloor
)

// xdpContext is struct xdp_md as BPF_PROG_TEST_RUN takes it.
type xdpContext struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Benchmark runs a program repeat times on packet with BPF_PROG_TEST_RUN
// (one syscall) and returns the mean wall-clock nanoseconds per run, with
// a fraction (the kernel's own figure is whole nanoseconds), and the
// program's return value. ifindex is the receiving interface for
// BenchXDPLAN, in the caller's network namespace. It goes
// through the live maps: counters grow, and first fragments are recorded.
func (l *Loader) Benchmark(target BenchTarget, packet []byte, repeat, ifindex int) (float64, uint32, error) {
	prog, err := l.BenchProgram(target)
	if err != nil {
		return 0, 0, err
	}

	opts := &ebpf.RunOptions{Data: packet, Repeat: uint32(max(repeat, 1))}
	if target == BenchXDPLAN {
		opts.Context = xdpContext{DataEnd: uint32(len(packet)), IngressIfindex: uint32(ifindex)}
	}
	began := time.Now()
	ret, err := prog.Run(opts)
	if err != nil {
		return 0, 0, fmt.Errorf("benchmark: %w", err)
	}
	return float64(time.Since(began).Nanoseconds()) / float64(opts.Repeat), ret, nil
}

// BenchProgram returns the program Benchmark runs for target; it stays
// owned by the Loader.
func (l *Loader) BenchProgram(target BenchTarget) (*ebpf.Program, error) {
	switch target {
	case BenchEgress:
		return l.objs.TCEgressEth, nil
	case BenchXDPUplink:
		return l.objs.XDPUplink, nil
	case BenchXDPLAN:
		return l.objs.XDPLAN, nil
	case BenchFloor:
		return l.floorProgram("tc_empty")
	}
	return l.floorProgram("xdp_empty")
}

// floorProgram loads an empty program once.
func (l *Loader) floorProgram(name string) (*ebpf.Program, error) {
	if prog := l.floors[name]; prog != nil {
		return prog, nil
	}
	prog, err := ebpf.NewProgram(l.spec.Programs[name])
	if err != nil {
		return nil, fmt.Errorf("load empty program %s: %w", name, err)
	}
	l.floors[name] = prog
	return prog, nil
}
