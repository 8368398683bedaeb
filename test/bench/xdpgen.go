package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// frameGenerator is the kernel's own packet generator: BPF_PROG_TEST_RUN in
// live-frame mode (BPF_F_TEST_XDP_LIVE_FRAMES) runs a tiny XDP program on
// frames in pages of its own page pool and sends every frame the program
// redirects out of that interface as an xdp_frame (ndo_xdp_xmit), with no
// skb and no socket. Out of a veth, the frames reach the peer as a NIC with
// native XDP would hand them over.
//
// The receiver may change a frame in place (the stack decrements the TTL
// and, when it forwards, writes the next hop's Ethernet header over the
// old one), and the page then comes back to the generator's pool with
// those changes. A NIC writes every frame anew, so the program copies the
// frame from its map over the page before it sends it. It also counts what
// it sends, so the count stays right even when cilium/ebpf restarts a run
// that a signal interrupted.
type frameGenerator struct {
	ns      *benchNS // where the program runs and its ifindex is looked up
	prog    *ebpf.Program
	state   *ebpf.Map
	frame   []byte
	release func() // ends holdInDispatcher
}

// genChunk is the number of frames per BPF_PROG_TEST_RUN call: small enough
// that a run stops close to its time limit.
const genChunk = 20000

// The generator's map has one value: the number of frames sent (8 bytes),
// then the frame to send.
const genFrameOffset = 8

// newFrameGenerator loads the generator's program, which sends frame out
// of the interface ifindex of ns.
func newFrameGenerator(ns *benchNS, ifindex int, frame []byte) (*frameGenerator, error) {
	state, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "gen_state", Type: ebpf.Array, KeySize: 4, MaxEntries: 1,
		ValueSize: uint32(genFrameOffset + (len(frame)+7)/8*8),
	})
	if err != nil {
		return nil, fmt.Errorf("frame generator: map: %w", err)
	}
	value := make([]byte, state.ValueSize())
	copy(value[genFrameOffset:], frame)
	if err := state.Update(uint32(0), value, ebpf.UpdateAny); err != nil {
		state.Close()
		return nil, fmt.Errorf("frame generator: store the frame: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "gen_redirect",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: generatorInsns(state.FD(), ifindex, len(frame)),
	})
	if err != nil {
		state.Close()
		return nil, fmt.Errorf("frame generator: load program: %w", err)
	}
	g := &frameGenerator{ns: ns, prog: prog, state: state, frame: frame}
	if g.release, err = holdInDispatcher(ns, "xdphold", prog); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// holdInDispatcher attaches prog in native mode to a veth pair made for
// the purpose in ns (pair, pair+"p"), which carries no traffic.
// BPF_PROG_TEST_RUN with a repeat count puts an XDP program into the
// kernel's XDP dispatcher and takes it out again afterwards; each change
// rewrites the dispatcher and waits for an RCU grace period, which here
// makes every call sleep about 15 ms, sleep that would count as the
// program's time. A program that is attached natively stays in the
// dispatcher, so the calls change nothing. The returned func detaches it
// and removes the pair.
func holdInDispatcher(ns *benchNS, pair string, prog *ebpf.Program) (func(), error) {
	if err := ns.sh(fmt.Sprintf("ip link add %s type veth peer name %sp", pair, pair)); err != nil {
		return nil, err
	}
	remove := func() { ns.sh("ip link del " + pair) }
	_, index, err := linkInfo(ns, pair)
	if err != nil {
		remove()
		return nil, err
	}
	var l link.Link
	err = ns.do(func() error {
		var err error
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		remove()
		return nil, fmt.Errorf("hold %s in the XDP dispatcher: %w", prog, err)
	}
	return func() { l.Close(); remove() }, nil
}

// generatorInsns is the generator's program: copy the frameLen bytes of
// the frame from the map value (stateFD) over the packet, add one to the
// count, return bpf_redirect(ifindex, 0). A packet shorter than the frame
// (which the kernel never hands it) is dropped uncounted.
func generatorInsns(stateFD, ifindex, frameLen int) asm.Instructions {
	insns := asm.Instructions{
		asm.LoadMapValue(asm.R5, stateFD, 0),     // r5 = the map value
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // r2 = ctx->data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // r3 = ctx->data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, int32(frameLen)),
		asm.JGT.Reg(asm.R4, asm.R3, "short"),
	}
	insns = append(insns, copyInsns(frameLen)...)
	return append(insns,
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R5, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, int32(ifindex)),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("short"), // XDP_DROP
		asm.Return(),
	)
}

// copyInsns copies n bytes from the map value at r5 (from genFrameOffset)
// to the packet at r2, in the widest loads and stores that fit.
func copyInsns(n int) asm.Instructions {
	widths := []struct {
		bytes int
		size  asm.Size
	}{{8, asm.DWord}, {4, asm.Word}, {2, asm.Half}, {1, asm.Byte}}
	var insns asm.Instructions
	for off := 0; off < n; {
		for _, w := range widths {
			if w.bytes <= n-off {
				insns = append(insns,
					asm.LoadMem(asm.R0, asm.R5, int16(genFrameOffset+off), w.size),
					asm.StoreMem(asm.R2, int16(off), asm.R0, w.size))
				off += w.bytes
				break
			}
		}
	}
	return insns
}

func (g *frameGenerator) close() {
	if g.release != nil {
		g.release()
	}
	g.prog.Close()
	g.state.Close()
}

// sent is the number of frames the program has redirected so far.
func (g *frameGenerator) sent() (uint64, error) {
	value := make([]byte, g.state.ValueSize())
	if err := g.state.Lookup(uint32(0), &value); err != nil {
		return 0, fmt.Errorf("frame generator: read the count: %w", err)
	}
	return binary.NativeEndian.Uint64(value), nil
}

// run generates n frames, or fewer once limit has passed, and returns how
// many it sent and the wall time it took. The generator's thread stays on
// one CPU, where the kernel runs the receiver's NAPI poll after each batch
// of 64 frames, so the wall time includes the receiver's work. (A thread
// moved to another CPU between two calls would leave the poll running on
// the old one, in parallel, and overrun the receiver's ring.)
func (g *frameGenerator) run(n int, limit time.Duration) (uint64, time.Duration, error) {
	before, err := g.sent()
	if err != nil {
		return 0, 0, err
	}
	var wall time.Duration
	err = g.ns.do(func() error {
		unpin, err := pinThread()
		if err != nil {
			return err
		}
		defer unpin()
		start := time.Now()
		defer func() { wall = time.Since(start) }()
		for done := 0; done < n && time.Since(start) < limit; done += genChunk {
			_, err := g.prog.Run(&ebpf.RunOptions{
				Data:   g.frame,
				Repeat: uint32(min(genChunk, n-done)),
				Flags:  unix.BPF_F_TEST_XDP_LIVE_FRAMES,
			})
			if err != nil {
				return fmt.Errorf("BPF_PROG_TEST_RUN in live-frame mode: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	after, err := g.sent()
	return after - before, wall, err
}

// pinThread binds the calling thread, which must be locked to its
// goroutine, to the last CPU it may run on, and returns how to undo it.
func pinThread() (func(), error) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	cpu := -1
	for i := range len(old) * 64 {
		if old.IsSet(i) {
			cpu = i
		}
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return nil, fmt.Errorf("pin the generator to CPU %d: %w", cpu, err)
	}
	return func() { unix.SchedSetaffinity(0, &old) }, nil
}

// frameRun is what one generator run through one filter gave.
type frameRun struct {
	sent      uint64        // frames the generator redirected out of gen0
	received  uint64        // packets lan0 counted in the same time
	ringDrops uint64        // frames lan0's ring refused (gen0's xdp_xmit_errors)
	wall      time.Duration // wall time of the generator run
	busy      time.Duration // CPU of the machine, less an idle period as long
	ip        ipCounters    // what the device under test's IP stack counted
}

func (r frameRun) pps() float64 { return float64(r.sent) / r.wall.Seconds() }

func (r frameRun) cpuPerPacket() time.Duration {
	return r.busy / time.Duration(r.sent)
}

// vanished fails when lan0 did not count every frame the generator sent
// or its ring refused some.
func (r frameRun) vanished() error {
	if r.received >= r.sent && r.ringDrops == 0 {
		return nil
	}
	return fmt.Errorf("frames vanished: generator sent %d, lan0 received %d, lan0's ring refused %d",
		r.sent, r.received, r.ringDrops)
}

// sendFrames runs the generator once and counts what became of the frames.
func (p *pipeline) sendFrames(g *frameGenerator, n int, limit time.Duration) (frameRun, error) {
	var r frameRun
	before, err := p.frameCounters()
	if err != nil {
		return r, err
	}
	busy, err := busyDuring(func() error {
		var err error
		r.sent, r.wall, err = g.run(n, limit)
		return err
	})
	if err != nil {
		return r, err
	}
	if r.sent == 0 {
		return r, fmt.Errorf("the frame generator sent nothing")
	}
	idle, err := busyDuring(func() error { time.Sleep(r.wall); return nil })
	if err != nil {
		return r, err
	}
	after, err := p.frameCounters()
	if err != nil {
		return r, err
	}
	r.busy = max(busy-idle, 0)
	r.received, r.ringDrops = after.received-before.received, after.refused-before.refused
	r.ip = after.ip.minus(before.ip)
	return r, nil
}

// frameCounters are the counters that tell where the generator's frames
// went.
type frameCounters struct {
	received uint64 // lan0's received packets
	refused  uint64 // gen0's xdp_frames that lan0's ring had no room for
	ip       ipCounters
}

func (p *pipeline) frameCounters() (frameCounters, error) {
	var c frameCounters
	var err error
	if c.received, err = rxPackets(p.dut, "lan0"); err != nil {
		return c, err
	}
	if c.refused, err = xmitErrors(p.gen, "gen0"); err != nil {
		return c, err
	}
	c.ip, err = readIPCounters(p.dut)
	return c, err
}

// ipCounters are IPv4 counters of a namespace (/proc/net/snmp) that tell
// what became of the frames after lan0.
type ipCounters struct {
	received    uint64 // InReceives: reached the IP stack
	hdrErrors   uint64 // InHdrErrors: bad header or TTL run out
	forwarding  uint64 // ForwDatagrams: to be forwarded (counted before the FORWARD hook)
	transmitted uint64 // OutTransmits: handed to a device
}

func (c ipCounters) minus(o ipCounters) ipCounters {
	return ipCounters{c.received - o.received, c.hdrErrors - o.hdrErrors,
		c.forwarding - o.forwarding, c.transmitted - o.transmitted}
}

func (c ipCounters) plus(o ipCounters) ipCounters {
	return ipCounters{c.received + o.received, c.hdrErrors + o.hdrErrors,
		c.forwarding + o.forwarding, c.transmitted + o.transmitted}
}

// readIPCounters reads the Ip: lines of /proc/net/snmp inside ns.
func readIPCounters(ns *benchNS) (ipCounters, error) {
	out, err := ns.output("cat /proc/net/snmp")
	if err != nil {
		return ipCounters{}, err
	}
	var lines [][]string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "Ip:" {
			lines = append(lines, f)
		}
	}
	if len(lines) != 2 || len(lines[0]) != len(lines[1]) {
		return ipCounters{}, fmt.Errorf("/proc/net/snmp in %s: no Ip: names and values", ns.name)
	}
	values := map[string]uint64{}
	for i, name := range lines[0][1:] {
		values[name], _ = strconv.ParseUint(lines[1][i+1], 10, 64)
	}
	return ipCounters{values["InReceives"], values["InHdrErrors"], values["ForwDatagrams"], values["OutTransmits"]}, nil
}

// frameFate is where a filter leaves the frames lan0 received.
type frameFate int

const (
	// forwarded: the stack forwards every frame out of wan0.
	forwarded frameFate = iota
	// droppedInForward: every frame reaches the FORWARD hook, none leaves.
	droppedInForward
	// droppedBeforeIP: no frame reaches the IP stack.
	droppedBeforeIP
)

// check fails when the IP counters show the frames did not end as this
// fate says, e.g. dropped by the stack for a reason of its own.
func (f frameFate) check(sent uint64, ip ipCounters) error {
	ok := ip.hdrErrors == 0
	switch f {
	case forwarded:
		ok = ok && ip.forwarding == sent && ip.transmitted == sent
	case droppedInForward:
		ok = ok && ip.forwarding == sent && ip.transmitted == 0
	case droppedBeforeIP:
		ok = ok && ip.received == 0
	}
	if !ok {
		return fmt.Errorf("frames not judged as expected: generator sent %d; IP stack: received %d, header errors %d, to forward %d, transmitted %d",
			sent, ip.received, ip.hdrErrors, ip.forwarding, ip.transmitted)
	}
	return nil
}

// xmitErrors sums a veth's tx_queue_*_xdp_xmit_errors: the xdp_frames sent
// out of it that its peer's receive ring had no room for.
func xmitErrors(ns *benchNS, dev string) (uint64, error) {
	out, err := ns.output("ethtool -S " + dev)
	if err != nil {
		return 0, err
	}
	var sum uint64
	found := false
	for _, line := range strings.Split(out, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "tx_queue_") || !strings.HasSuffix(name, "_xdp_xmit_errors") {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("ethtool -S %s: %s: %w", dev, name, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("ethtool -S %s: no tx_queue_*_xdp_xmit_errors counter", dev)
	}
	return sum, nil
}

// setGRO switches GRO on lan0. A veth takes xdp_frames from its peer only
// while it has NAPI: with a native XDP program attached, or with GRO on.
func (p *pipeline) setGRO(on bool) error {
	state := map[bool]string{true: "on", false: "off"}[on]
	return p.dut.sh("ethtool -K lan0 gro " + state)
}

// checkNeedsNAPI shows on this kernel why lan0 gets GRO: with GRO off and no
// native XDP program, the veth has no NAPI for xdp_frames, and the kernel
// drops them at the redirect, counted nowhere but by the generator.
func (p *pipeline) checkNeedsNAPI(w io.Writer, g *frameGenerator) error {
	if err := p.setGRO(false); err != nil {
		return err
	}
	r, err := p.sendFrames(g, 10000, time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "check, GRO off on lan0 and no XDP program: the generator sent %d frames, lan0 received %d, its ring refused %d\n",
		r.sent, r.received, r.ringDrops)
	return p.setGRO(true)
}

// frameVariantResult is the median over the rounds of one filter.
type frameVariantResult struct {
	name      string
	pps       float64
	cpu       time.Duration
	sent      uint64     // over all rounds
	received  uint64     // over all rounds
	ringDrops uint64     // over all rounds
	ip        ipCounters // over all rounds
}

// benchFrames measures every filter against the kernel's frame generator:
// the drop rate (frames sent per second of the generator's run, the
// receiver's work included) and CPU per frame, three rounds, median.
func (p *pipeline) benchFrames(w io.Writer, entries, n int, limit time.Duration) error {
	g, err := newFrameGenerator(p.gen, p.genIndex, p.frame())
	if err != nil {
		return err
	}
	defer g.close()
	defer p.setGRO(false)

	printFramesHeader(w, entries, n, limit)
	if err := p.checkNeedsNAPI(w, g); err != nil {
		return err
	}
	// Warm up: ARP towards the sink, caches.
	if _, err := p.sendFrames(g, 10000, time.Second); err != nil {
		return err
	}

	runs := map[string][]frameRun{}
	var order []string
	for round := range 3 {
		for _, v := range filterVariants() {
			r, err := p.framesThrough(v, g, entries, n, limit)
			if err != nil {
				return fmt.Errorf("frames, %s: %w", v.name, err)
			}
			runs[v.name] = append(runs[v.name], r)
			if round == 0 {
				order = append(order, v.name)
			}
		}
	}
	var results []frameVariantResult
	for _, name := range order {
		results = append(results, summarize(name, runs[name]))
	}
	printFrames(w, results)
	return nil
}

// framesThrough installs one filter, runs the generator once and removes
// the filter again; frames that vanished fail the benchmark.
func (p *pipeline) framesThrough(v filterVariant, g *frameGenerator, entries, n int, limit time.Duration) (frameRun, error) {
	remove, err := v.install(p, entries)
	if err != nil {
		return frameRun{}, err
	}
	r, err := p.sendFrames(g, n, limit)
	remove()
	if err != nil {
		return r, err
	}
	if err := r.vanished(); err != nil {
		return r, err
	}
	return r, v.fate.check(r.sent, r.ip)
}

// summarize takes the median rate and CPU of a filter's rounds and adds up
// its frames.
func summarize(name string, runs []frameRun) frameVariantResult {
	res := frameVariantResult{name: name}
	var pps, cpu []float64
	for _, r := range runs {
		pps = append(pps, r.pps())
		cpu = append(cpu, float64(r.cpuPerPacket()))
		res.sent += r.sent
		res.received += r.received
		res.ringDrops += r.ringDrops
		res.ip = res.ip.plus(r.ip)
	}
	res.pps, res.cpu = median(pps), time.Duration(median(cpu))
	return res
}

// printFramesHeader says what benchFrames measures and how.
func printFramesHeader(w io.Writer, entries, n int, limit time.Duration) {
	fmt.Fprintf(w, "LAN drop, whole pipeline: the kernel's frame generator (BPF_PROG_TEST_RUN, live frames, XDP redirect out of gen0), %d entries, median of 3 rounds\n", entries)
	fmt.Fprintf(w, "frames reach lan0 as xdp_frames, as from a NIC with native XDP (GRO on lan0 gives it NAPI without a program); %d frames per filter and round, or fewer after %s\n", n, limit)
	fmt.Fprintln(w, "Mpps: frames sent / wall time of the generator's run (one CPU, lan0's processing included), the drop rate; higher is better")
	fmt.Fprintln(w, "CPU: of the whole machine (/proc/stat, less an idle period as long) per frame; lower is better")
	fmt.Fprintln(w, "native/this: edgeward native's figure over this row's; above 1 in Mpps or below 1 in CPU means edgeward native is ahead")
	fmt.Fprintln(w, "frames, lan0 received, ring drops (gen0's xdp_xmit_errors) and the gateway's IPv4 counters summed over the rounds:")
	fmt.Fprintln(w, "IP in = InReceives, IP fwd = ForwDatagrams (counted before the FORWARD hook), IP out = OutTransmits")
}

// printFrames prints benchFrames' table.
func printFrames(w io.Writer, results []frameVariantResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "filter\tframes sent\tlan0 received\tring drops\tIP in\tIP fwd\tIP out\tMpps\tnative/this\tCPU us/pkt\tnative/this\t")
	var ours frameVariantResult
	for _, r := range results {
		if r.name == nativeVariant {
			ours = r
		}
	}
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.name, r.sent, r.received, r.ringDrops,
			r.ip.received, r.ip.forwarding, r.ip.transmitted, r.pps/1e6, ours.pps/r.pps, float64(r.cpu)/1e3, float64(ours.cpu)/float64(r.cpu))
	}
	tw.Flush()
	fmt.Fprintln(w)
}
