package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
	"github.com/edgeward/edgeward/loader"
)

// policyShape is one policy the egress program is measured under.
type policyShape struct {
	name    string
	entries int
	// lens are the prefix lengths the entries cycle through; more distinct
	// lengths mean more table probes on a miss.
	lens4, lens6 []int
}

func shapes() []policyShape {
	var out []policyShape
	for _, n := range []int{10, 1000, 100000} {
		out = append(out, policyShape{name: "hosts", entries: n, lens4: []int{32}, lens6: []int{128}})
	}
	out = append(out, policyShape{name: "3 lengths", entries: 100000, lens4: []int{32, 24, 16}, lens6: []int{128, 64, 48}})
	return out
}

type result struct {
	shape   policyShape
	family  string
	path    string
	ns      float64
	floorNS float64
	verdict string
}

func benchDataPlane(w io.Writer, repeat, rounds int) error {
	dir, cleanup, err := tempBPFFS()
	if err != nil {
		return err
	}
	defer cleanup()

	l, err := loader.Open(loader.Options{PinPath: dir + "/edgeward"})
	if err != nil {
		return err
	}
	defer l.Close()

	var results []result
	for i, shape := range shapes() {
		cfg := shapeConfig(shape)
		p, err := loader.Compile(cfg, uint32(i+1))
		if err != nil {
			return fmt.Errorf("compile %d entries: %w", shape.entries, err)
		}
		if err := l.ApplyPolicy(p); err != nil {
			return err
		}
		for _, c := range benchPackets(cfg) {
			r, err := measure(l, c.packet, repeat, rounds)
			if err != nil {
				return err
			}
			r.shape, r.family, r.path = shape, c.family, c.path
			results = append(results, r)
		}
	}
	printDataPlane(w, results, repeat, rounds)
	return nil
}

// measure returns the median ns per packet of the egress program and of
// the floor, measured in alternation so that drift hits both alike.
func measure(l *loader.Loader, packet []byte, repeat, rounds int) (result, error) {
	var prog, floor []float64
	var ret uint32
	for range rounds {
		d, r, err := l.Benchmark(loader.BenchEgress, packet, repeat, 0)
		if err != nil {
			return result{}, err
		}
		f, _, err := l.Benchmark(loader.BenchFloor, packet, repeat, 0)
		if err != nil {
			return result{}, err
		}
		prog = append(prog, d)
		floor = append(floor, f)
		ret = r
	}
	verdict := "pass"
	if ret == 2 {
		verdict = "drop"
	}
	return result{ns: median(prog), floorNS: median(floor), verdict: verdict}, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

type benchPacket struct {
	family, path string
	packet       []byte
}

// benchPackets are an allowed and a denied packet per family: the allowed
// one goes to the last entry written, the denied one to an address no
// entry covers. Both are TCP segments of an open connection (ACK), the
// packets a busy uplink mostly carries; a SYN costs one flow-table write
// more.
func benchPackets(cfg *config.Config) []benchPacket {
	src4, src6 := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8:100::2")
	last := cfg.Endpoints[len(cfg.Endpoints)-1].To
	allow4, allow6 := last[0].Addr(), last[1].Addr()
	deny4, deny6 := netip.MustParseAddr("192.0.2.80"), netip.MustParseAddr("2001:db8:2::80")

	v4 := func(dst netip.Addr) []byte {
		return pkt.Ether(pkt.EtherIPv4, pkt.IPv4(src4, dst, pkt.ProtoTCP, pkt.IPv4Options{}, ackSegment()))
	}
	v6 := func(dst netip.Addr) []byte {
		return pkt.Ether(pkt.EtherIPv6, pkt.IPv6(src6, dst, pkt.ProtoTCP, ackSegment()))
	}
	return []benchPacket{
		{"ipv4", "allow", v4(allow4)},
		{"ipv4", "deny", v4(deny4)},
		{"ipv6", "allow", v6(allow6)},
		{"ipv6", "deny", v6(deny6)},
	}
}

// shapeConfig builds a policy of shape.entries endpoints, each one IPv4 and
// one IPv6 prefix with tcp/443, inside 10.0.0.0/8 and fd00::/8.
func shapeConfig(shape policyShape) *config.Config {
	cfg := &config.Config{Mode: config.ModeEnforce}
	for i := range shape.entries / 2 {
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{
			Name:  fmt.Sprintf("e%d", i),
			To:    []netip.Prefix{prefix4(i, shape.lens4), prefix6(i, shape.lens6)},
			Ports: []config.PortRange{{Proto: config.ProtoTCP, First: 443, Last: 443}},
		})
	}
	return cfg
}

func prefix4(i int, lens []int) netip.Prefix {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 0x0a000000|uint32(i)<<8|1)
	return netip.PrefixFrom(netip.AddrFrom4(b), lens[i%len(lens)]).Masked()
}

func prefix6(i int, lens []int) netip.Prefix {
	var b [16]byte
	b[0] = 0xfd
	binary.BigEndian.PutUint32(b[4:], uint32(i))
	binary.BigEndian.PutUint32(b[12:], 1)
	return netip.PrefixFrom(netip.AddrFrom16(b), lens[i%len(lens)]).Masked()
}

func printDataPlane(w io.Writer, results []result, repeat, rounds int) {
	fmt.Fprintf(w, "data plane: tc egress program, BPF_PROG_TEST_RUN, median of %d x %d runs\n", rounds, repeat)
	fmt.Fprintln(w, "floor = an empty tc program measured in alternation with it; goal: ratio <= 2.0 at 100,000 entries")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tentries\tfamily\tpath\tverdict\tns/pkt\tfloor ns\tratio\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.1f\t%.1f\t%.2f\t\n",
			r.shape.name, r.shape.entries, r.family, r.path, r.verdict, r.ns, r.floorNS, r.ns/r.floorNS)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// tempBPFFS mounts a private bpffs for the benchmark's pins.
func tempBPFFS() (string, func(), error) {
	dir, err := os.MkdirTemp("", "edgeward-bench-")
	if err != nil {
		return "", nil, err
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("mount bpffs: %w", err)
	}
	return dir, func() {
		unix.Unmount(dir, unix.MNT_DETACH)
		os.Remove(dir)
	}, nil
}

// ackSegment is a TCP header from port 40000 to 443 with only ACK set.
func ackSegment() []byte {
	tcp := pkt.TCP(40000, 443)
	tcp[13] = 0x10
	return tcp
}
