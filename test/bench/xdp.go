package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
	"github.com/edgeward/edgeward/loader"
)

// pipeline is three namespaces: a packet generator, the device under test
// (a gateway that routes from lan0 to wan0) and a sink behind wan0.
type pipeline struct {
	gen, dut, sink     *benchNS
	lanIndex, genIndex int
	lanMAC, genMAC     net.HardwareAddr
	dir                string
}

const (
	benchOT       = "10.10.0.2"
	benchInternet = "192.0.2.80"
)

func newPipeline() (*pipeline, error) {
	prefix := fmt.Sprintf("ewbench%d-", os.Getpid())
	p := &pipeline{}
	var err error
	if p.dir, err = os.MkdirTemp("", "edgeward-bench-"); err != nil {
		return nil, err
	}
	for _, ns := range []struct {
		dst  **benchNS
		name string
	}{{&p.gen, "gen"}, {&p.dut, "dut"}, {&p.sink, "sink"}} {
		if *ns.dst, err = newNS(prefix + ns.name); err != nil {
			p.close()
			return nil, err
		}
	}
	if err := p.wire(); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// wire builds gen0 -- lan0 [dut, routes] wan0 -- eth0 [sink].
func (p *pipeline) wire() error {
	steps := []struct {
		ns  *benchNS
		cmd string
	}{
		{p.dut, "ip link add lan0 type veth peer name gen0 netns " + p.gen.name},
		{p.dut, "ip link add wan0 type veth peer name eth0 netns " + p.sink.name},
		{p.dut, "ip addr add 10.10.0.1/24 dev lan0"},
		{p.dut, "ip addr add 198.51.100.2/24 dev wan0"},
		{p.dut, "ip link set lan0 up"},
		{p.dut, "ip link set wan0 up"},
		{p.dut, "sysctl -qw net.ipv4.ip_forward=1"},
		{p.dut, "ip route add default via 198.51.100.1"},
		{p.gen, "ip link set gen0 up"},
		{p.sink, "ip addr add 198.51.100.1/24 dev eth0"},
		{p.sink, "ip link set eth0 up"},
	}
	for _, s := range steps {
		if err := s.ns.sh(s.cmd); err != nil {
			return err
		}
	}

	var err error
	if p.lanMAC, p.lanIndex, err = linkInfo(p.dut, "lan0"); err != nil {
		return err
	}
	p.genMAC, p.genIndex, err = linkInfo(p.gen, "gen0")
	return err
}

func (p *pipeline) close() {
	for _, ns := range []*benchNS{p.gen, p.dut, p.sink} {
		if ns != nil {
			ns.remove()
		}
	}
	os.RemoveAll(p.dir)
}

// linkInfo returns an interface's MAC and index inside a namespace.
func linkInfo(ns *benchNS, name string) (net.HardwareAddr, int, error) {
	var mac net.HardwareAddr
	var index int
	err := ns.do(func() error {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		mac, index = ifc.HardwareAddr, ifc.Index
		return nil
	})
	return mac, index, err
}

// rxPackets reads the received-packet counter of an interface.
func rxPackets(ns *benchNS, name string) (uint64, error) {
	out, err := ns.output("ip -j -s link show dev " + name)
	if err != nil {
		return 0, err
	}
	var links []struct {
		Stats64 struct {
			RX struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) == 0 {
		return 0, fmt.Errorf("read counters of %s: %v", name, err)
	}
	return links[0].Stats64.RX.Packets, nil
}

// busyJiffies sums the non-idle CPU time of the machine from /proc/stat.
func busyJiffies() (uint64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
	var busy uint64
	for i, f := range fields[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		v, _ := strconv.ParseUint(f, 10, 64)
		busy += v
	}
	return busy, nil
}

// frame is the generator's packet: UDP from the OT host to the internet
// host, routed by the device under test towards wan0.
func (p *pipeline) frame() []byte {
	ip := pkt.IPv4(netip.MustParseAddr(benchOT), netip.MustParseAddr(benchInternet), pkt.ProtoUDP,
		pkt.IPv4Options{}, pkt.UDP(40000, 9, make([]byte, 18)))
	pkt.SetIPv4Checksum(ip)
	b := append([]byte{}, p.lanMAC...)
	b = append(b, p.genMAC...)
	b = binary.BigEndian.AppendUint16(b, pkt.EtherIPv4)
	return append(b, ip...)
}

// trafgenConfig writes the frame in trafgen's configuration syntax.
func (p *pipeline) trafgenConfig() (string, error) {
	var sb strings.Builder
	sb.WriteString("{ ")
	for i, b := range p.frame() {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "0x%02x", b)
	}
	sb.WriteString(" }\n")
	path := filepath.Join(p.dir, "frame.cfg")
	return path, os.WriteFile(path, []byte(sb.String()), 0o600)
}

// offer sends n frames at rate packets/s and returns the CPU time per
// packet that lan0 received, generator included, less what the machine
// spends idle in the same time (measured right before).
func (p *pipeline) offer(n, rate int) (time.Duration, uint64, error) {
	cfg, err := p.trafgenConfig()
	if err != nil {
		return 0, 0, err
	}
	duration := time.Duration(n) * time.Second / time.Duration(rate)
	idle, err := busyDuring(func() error { time.Sleep(duration); return nil })
	if err != nil {
		return 0, 0, err
	}

	rx0, err := rxPackets(p.dut, "lan0")
	if err != nil {
		return 0, 0, err
	}
	cmd := fmt.Sprintf("trafgen --dev gen0 --conf %s --rate %dpps --num %d --cpus 1", cfg, rate, n)
	busy, err := busyDuring(func() error { return p.gen.sh(cmd) })
	if err != nil {
		return 0, 0, err
	}
	rx1, err := rxPackets(p.dut, "lan0")
	if err != nil || rx1 == rx0 {
		return 0, 0, fmt.Errorf("no packets received on lan0 (%v)", err)
	}
	return max(busy-idle, 0) / time.Duration(rx1-rx0), rx1 - rx0, nil
}

// busyDuring returns the non-idle CPU time of the machine while fn runs.
func busyDuring(fn func() error) (time.Duration, error) {
	before, err := busyJiffies()
	if err != nil {
		return 0, err
	}
	if err := fn(); err != nil {
		return 0, err
	}
	after, err := busyJiffies()
	if err != nil {
		return 0, err
	}
	return time.Duration(after-before) * 10 * time.Millisecond, nil
}

// nativeVariant is the filter every other is compared with.
const nativeVariant = "edgeward xdp_lan (native XDP)"

// filterVariant installs one way of dropping the generator's traffic.
type filterVariant struct {
	name    string
	install func(p *pipeline, entries int) (remove func(), err error)
	// fate is where the traffic ends, checked against the IP counters.
	fate frameFate
}

func filterVariants() []filterVariant {
	return []filterVariant{
		{"stack, no filter (forwards)", func(*pipeline, int) (func(), error) { return func() {}, nil }, forwarded},
		{"iptables FORWARD, linear rules", installIptables, droppedInForward},
		{"nftables netdev ingress, set", installNft, droppedBeforeIP},
		{nativeVariant, installEdgeward(false), droppedBeforeIP},
		{"edgeward xdp_lan (generic XDP)", installEdgeward(true), droppedBeforeIP},
	}
}

func hostAddr(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", 100+i/65536, (i/256)%256, i%256)
}

func installIptables(p *pipeline, entries int) (func(), error) {
	var sb strings.Builder
	sb.WriteString("*filter\n:FORWARD ACCEPT [0:0]\n")
	for i := range entries {
		fmt.Fprintf(&sb, "-A FORWARD -d %s/32 -p udp --dport 443 -j ACCEPT\n", hostAddr(i))
	}
	sb.WriteString("-A FORWARD -j DROP\nCOMMIT\n")
	if err := p.restore("iptables-restore", sb.String()); err != nil {
		return nil, err
	}
	return func() { p.dut.sh("iptables -F FORWARD") }, nil
}

func installNft(p *pipeline, entries int) (func(), error) {
	var sb strings.Builder
	sb.WriteString("table netdev ewbench {\n set allowed {\n  type ipv4_addr\n  elements = { ")
	for i := range entries {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(hostAddr(i))
	}
	sb.WriteString(" }\n }\n chain ingress {\n  type filter hook ingress device \"lan0\" priority 0; policy accept;\n")
	sb.WriteString("  ip daddr @allowed accept\n  ip protocol udp drop\n }\n}\n")
	if err := p.restore("nft -f", sb.String()); err != nil {
		return nil, err
	}
	return func() { p.dut.sh("nft delete table netdev ewbench") }, nil
}

// restore feeds rules to a command that reads them from a file.
func (p *pipeline) restore(cmd, rules string) error {
	path := filepath.Join(p.dir, "rules")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		return err
	}
	return p.dut.sh(cmd + " " + path)
}

// installEdgeward attaches xdp_lan to lan0, natively or in generic mode.
func installEdgeward(generic bool) func(p *pipeline, entries int) (func(), error) {
	return func(p *pipeline, entries int) (func(), error) {
		return attachEdgeward(p, entries, generic)
	}
}

func attachEdgeward(p *pipeline, entries int, generic bool) (func(), error) {
	pins := filepath.Join(p.dir, "bpffs")
	cleanup, err := mountBPFFS(pins)
	if err != nil {
		return nil, err
	}
	var l *loader.Loader
	err = p.dut.do(func() error {
		var err error
		if l, err = loader.Open(loader.Options{PinPath: pins + "/edgeward", XDPGeneric: generic}); err != nil {
			return err
		}
		pol, err := loader.Compile(hostsConfig(entries), 1)
		if err != nil {
			return err
		}
		if err := l.ApplyPolicy(pol); err != nil {
			return err
		}
		attached, err := l.Attach(loader.Interface{Index: p.lanIndex, Name: "lan0"}, loader.RoleLAN)
		if err != nil {
			return err
		}
		return checkXDPMode(attached, generic)
	})
	if err != nil {
		cleanup()
		return nil, err
	}
	return func() {
		p.dut.do(func() error { return loader.Unload(pins + "/edgeward") })
		l.Close()
		cleanup()
	}, nil
}

// checkXDPMode fails when xdp_lan is not attached in the mode asked for
// (the loader falls back to generic XDP where the driver has none).
func checkXDPMode(attached []loader.Attached, generic bool) error {
	want := loader.ModeXDPNative
	if generic {
		want = loader.ModeXDPGeneric
	}
	for _, a := range attached {
		if a.Hook == loader.HookXDPLAN {
			if a.Mode != want {
				return fmt.Errorf("xdp_lan attached as %s, not %s", a.Mode, want)
			}
			return nil
		}
	}
	return fmt.Errorf("xdp_lan not attached to lan0")
}

// hostsConfig allows udp/443 to entries host addresses.
func hostsConfig(entries int) *config.Config {
	cfg := &config.Config{Mode: config.ModeEnforce}
	for i := range entries {
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{
			Name:  fmt.Sprintf("e%d", i),
			To:    []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(hostAddr(i)), 32)},
			Ports: []config.PortRange{{Proto: config.ProtoUDP, First: 443, Last: 443}},
		})
	}
	return cfg
}

// benchPipeline measures the CPU per dropped packet of each filter at a
// fixed offered rate from trafgen, then the drop rate and CPU per packet of
// each filter against the kernel's frame generator (at most frames per
// filter and round).
func benchPipeline(w io.Writer, entries, rate, n, frames int) error {
	for _, tool := range [][2]string{{"trafgen", "netsniff-ng"}, {"ethtool", "ethtool"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			return fmt.Errorf("%s (Debian package %s) is needed: %w", tool[0], tool[1], err)
		}
	}
	p, err := newPipeline()
	if err != nil {
		return err
	}
	defer p.close()

	// Warm up: ARP towards the sink, caches.
	if _, _, err := p.offer(1000, rate); err != nil {
		return err
	}

	// Three rounds through every filter, the median per filter: a burst
	// of background load spoils one measurement, not the figure.
	samples := map[string][]float64{}
	var order []string
	for round := range 3 {
		for _, v := range filterVariants() {
			remove, err := v.install(p, entries)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			per, _, err := p.offer(n, rate)
			remove()
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			samples[v.name] = append(samples[v.name], float64(per))
			if round == 0 {
				order = append(order, v.name)
			}
		}
	}
	results := map[string]time.Duration{}
	for name, xs := range samples {
		results[name] = time.Duration(median(xs))
	}

	fmt.Fprintf(w, "LAN drop, whole pipeline: %d UDP packets/s from a generator (trafgen) on a veth, %d packets, %d entries, median of 3 rounds\n", rate, n, entries)
	fmt.Fprintln(w, "CPU of the whole machine (/proc/stat, less an idle period as long) per packet received on lan0, generator included; lower is better")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "filter\tCPU us/pkt\tedgeward native / this\t")
	ours := results[nativeVariant]
	for _, name := range order {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t\n", name, float64(results[name])/1e3, float64(ours)/float64(results[name]))
	}
	tw.Flush()
	fmt.Fprintln(w)
	return p.benchFrames(w, entries, frames, framesLimit)
}

// framesLimit bounds one generator run of benchFrames in time.
const framesLimit = time.Second

// benchXDPPrograms measures the XDP programs with BPF_PROG_TEST_RUN next to
// an empty XDP program: the uplink ingress program on a reply of a known
// flow and on an unsolicited SYN, and the LAN program (whose FIB lookups
// run in the pipeline's gateway namespace) on an allowed and a denied
// packet.
func benchXDPPrograms(w io.Writer, repeat, rounds int) error {
	p, err := newPipeline()
	if err != nil {
		return err
	}
	defer p.close()
	pins := filepath.Join(p.dir, "bpffs")
	cleanup, err := mountBPFFS(pins)
	if err != nil {
		return err
	}
	defer cleanup()
	l, err := loader.Open(loader.Options{PinPath: pins + "/edgeward"})
	if err != nil {
		return err
	}
	defer l.Close()

	const entries = 1000
	pol, err := loader.Compile(hostsConfig(entries), 1)
	if err != nil {
		return err
	}
	if err := l.ApplyPolicy(pol); err != nil {
		return err
	}

	gw := netip.MustParseAddr("198.51.100.2")
	endpoint := netip.MustParseAddr(hostAddr(entries - 1))
	internet := netip.MustParseAddr(benchInternet)
	ot := netip.MustParseAddr(benchOT)
	udp := func(src, dst netip.Addr, sport, dport uint16) []byte {
		return pkt.Ether(pkt.EtherIPv4, pkt.IPv4(src, dst, pkt.ProtoUDP, pkt.IPv4Options{}, pkt.UDP(sport, dport, make([]byte, 18))))
	}
	// Open the flow whose reply the ingress program will see.
	if _, _, err := l.Benchmark(loader.BenchEgress, udp(gw, endpoint, 40000, 443), 1, 0); err != nil {
		return err
	}

	cases := []struct {
		program, path string
		target        loader.BenchTarget
		packet        []byte
	}{
		{"xdp_uplink", "reply of a flow", loader.BenchXDPUplink, udp(endpoint, gw, 443, 40000)},
		{"xdp_uplink", "unsolicited", loader.BenchXDPUplink, pkt.Ether(pkt.EtherIPv4, pkt.IPv4(internet, gw, pkt.ProtoTCP, pkt.IPv4Options{}, pkt.TCP(1234, 22)))},
		{"xdp_lan", "allowed, routed to uplink", loader.BenchXDPLAN, udp(ot, endpoint, 40000, 443)},
		{"xdp_lan", "denied", loader.BenchXDPLAN, udp(ot, internet, 40000, 443)},
	}

	release, err := holdBenchPrograms(p.dut, l)
	if err != nil {
		return err
	}
	defer release()

	fmt.Fprintf(w, "XDP programs, BPF_PROG_TEST_RUN, %d entries, median of %d x %d runs, floor = an empty XDP program\n", entries, rounds, repeat)
	fmt.Fprintln(w, "each program is also attached to an idle veth, so that no run waits for the kernel's XDP dispatcher to change")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "program\tpath\tverdict\tns/pkt\tfloor ns\tratio\t")
	for _, c := range cases {
		var prog, floor []float64
		var ret uint32
		err := p.dut.do(func() error {
			for range rounds {
				d, r, err := l.Benchmark(c.target, c.packet, repeat, p.lanIndex)
				if err != nil {
					return err
				}
				f, _, err := l.Benchmark(loader.BenchXDPFloor, c.packet, repeat, 0)
				if err != nil {
					return err
				}
				prog, floor, ret = append(prog, d), append(floor, f), r
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.program, c.path, err)
		}
		verdict := map[uint32]string{1: "drop", 2: "pass"}[ret]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%.2f\t\n", c.program, c.path, verdict, median(prog), median(floor), median(prog)/median(floor))
	}
	tw.Flush()
	fmt.Fprintln(w)
	return nil
}

// holdBenchPrograms keeps the measured XDP programs and the floor in the
// XDP dispatcher (see holdInDispatcher) until the returned func runs.
func holdBenchPrograms(ns *benchNS, l *loader.Loader) (func(), error) {
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
	}
	for i, target := range []loader.BenchTarget{loader.BenchXDPUplink, loader.BenchXDPLAN, loader.BenchXDPFloor} {
		prog, err := l.BenchProgram(target)
		if err != nil {
			release()
			return nil, err
		}
		r, err := holdInDispatcher(ns, fmt.Sprintf("xdphold%d", i), prog)
		if err != nil {
			release()
			return nil, err
		}
		releases = append(releases, r)
	}
	return release, nil
}
