package loader

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/pkt"
)

// Probe is a made-up packet for Explain: where it is judged and what it
// carries.
type Probe struct {
	// Hook is the program that judges it: HookTCEgress (leaving on
	// Ifindex), HookUplinkIngress (arriving on Ifindex from the uplink) or
	// HookXDPLAN (arriving on Ifindex from a LAN host).
	Hook Hook
	// Ifindex is the interface, in the caller's network namespace.
	Ifindex int
	// L3 is set for a device without an Ethernet header (TUN, PPP, raw-IP
	// LTE); such uplinks have tc programs for both directions.
	L3 bool
	// Proto is the IP protocol: TCP, UDP, or ICMP (ICMPv6 for IPv6
	// addresses), which is sent as an echo request.
	Proto uint8
	// Src and Dst are the addresses and ports; both of one family.
	Src, Dst netip.AddrPort
	// TCPFlags are the flags of a TCP probe (pkt.TCPSyn, pkt.TCPAck, ...).
	TCPFlags uint8
	// Mark is the packet mark (tc programs only): GuardMark for DNS the
	// DNS guard sent or let through.
	Mark uint32
}

// Explanation is how the data plane judged a Probe.
type Explanation struct {
	Hook       Hook
	Verdict    Verdict
	Reason     Reason
	Generation uint32
	// Endpoint is the index of the deciding endpoint (EndpointProxy for
	// the proxy) when Reason is endpoint or proxy, or the index in
	// dns.names when Reason is learned.
	Endpoint uint16
	// LearnedExpired is set when the destination was learned but its
	// entry has expired.
	LearnedExpired bool
	// Flow is the flow entry the probe belongs to, if any.
	Flow *FlowEntry
	// Learned is the learned destination the probe goes to, if any.
	Learned *LearnedDest
	// Program is the program that judged the probe; SameAsLoaded tells
	// whether the loaded (pinned) program of that name has the same
	// instructions, that is, comes from the same build.
	Program      string
	SameAsLoaded bool
}

// EndpointProxy is the Endpoint of an Explanation decided by the proxy.
const EndpointProxy = proxyEndpoint

// FlowEntry is a recorded flow, as Explain reports it.
type FlowEntry struct {
	// State is "new" or "established" (TCP: the remote answered), or the
	// number of a state this version does not know.
	State string
	// Lifetime is how long the entry lives without another packet.
	Lifetime time.Duration
	// Reason is why egress allowed the flow.
	Reason Reason
}

// explainPrograms are the programs Explain can run, by hook and L3.
var explainPrograms = map[Hook][2]string{
	HookTCEgress:      {"tc_egress_eth", "tc_egress_l3"},
	HookUplinkIngress: {"xdp_uplink", "tc_ingress_l3"},
	HookXDPLAN:        {"xdp_lan", ""},
}

// Explain judges p with a twin of the program that judges such packets,
// against the maps pinned under pinPath. The twin is built from this
// binary's object with explain mode on (see ew_explain in bpf/maps.h): it
// writes nothing that real traffic uses, so counters, flows, fragments and
// events stay as they are.
//
// It fails when nothing is pinned under pinPath (wrapping os.ErrNotExist),
// when the pinned maps come from an incompatible version, or when the
// kernel refuses the run (an Ifindex that does not exist here).
func Explain(pinPath string, p Probe) (*Explanation, error) {
	name, err := explainProgram(p)
	if err != nil {
		return nil, err
	}
	packet, err := probePacket(p)
	if err != nil {
		return nil, err
	}

	pinned, err := openPinnedMaps(newPinLayout(pinPath).maps)
	if err != nil {
		return nil, err
	}
	defer closeMaps(pinned)

	prog, out, err := loadExplainTwin(name, pinned)
	if err != nil {
		return nil, err
	}
	defer prog.Close()
	defer out.Close()

	if err := runProbe(prog, p, packet); err != nil {
		return nil, err
	}
	x, err := readExplanation(out, pinned, p)
	if err != nil {
		return nil, err
	}
	x.Program = name
	x.SameAsLoaded = sameInstructions(prog, filepath.Join(newPinLayout(pinPath).progs, name))
	return x, nil
}

// sameInstructions tells whether the program pinned at path has the same
// instructions as prog. The kernel's tag hashes them without the map
// references, so an explain twin and the enforcing program of one build
// share it.
func sameInstructions(prog *ebpf.Program, path string) bool {
	loaded, err := ebpf.LoadPinnedProgram(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return false
	}
	defer loaded.Close()

	a, errA := prog.Info()
	b, errB := loaded.Info()
	return errA == nil && errB == nil && a.Tag == b.Tag
}

// explainProgram names the program that judges p.
func explainProgram(p Probe) (string, error) {
	names, ok := explainPrograms[p.Hook]
	if !ok {
		return "", fmt.Errorf("explain: no program for hook %d", p.Hook)
	}
	name := names[0]
	if p.L3 {
		name = names[1]
	}
	if name == "" {
		return "", fmt.Errorf("explain: LAN interfaces without an Ethernet header have no program")
	}
	return name, nil
}

// openPinnedMaps opens every map the daemon pins, by name.
func openPinnedMaps(dir string) (map[string]*ebpf.Map, error) {
	maps := make(map[string]*ebpf.Map, len(pinnedMaps))
	for _, name := range pinnedMaps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			closeMaps(maps)
			return nil, fmt.Errorf("open pinned map %s: %w", name, err)
		}
		maps[name] = m
	}
	return maps, nil
}

func closeMaps(maps map[string]*ebpf.Map) {
	for _, m := range maps {
		m.Close()
	}
}

// loadExplainTwin loads program name in explain mode, using the pinned
// maps, and returns it with its private ew_explained map.
func loadExplainTwin(name string, pinned map[string]*ebpf.Map) (*ebpf.Program, *ebpf.Map, error) {
	coll, err := loadTwin(name, pinned, map[string]any{"ew_explain": uint8(1)})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, nil, fmt.Errorf("explain: the pinned maps come from an incompatible version of edgeward: %w", err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("explain: %w", err)
	}
	prog, out := coll.DetachProgram(name), coll.DetachMap("ew_explained")
	coll.Close()
	return prog, out, nil
}

// loadTwin loads program name alone from this binary's object, with the
// rodata constants set (the verifier removes the branches they rule out),
// on the maps in pinned.
func loadTwin(name string, pinned map[string]*ebpf.Map, constants map[string]any) (*ebpf.Collection, error) {
	spec, err := loadEdgeward()
	if err != nil {
		return nil, err
	}
	for constant, value := range constants {
		if err := spec.Variables[constant].Set(value); err != nil {
			return nil, fmt.Errorf("set %s: %w", constant, err)
		}
	}
	for prog := range spec.Programs {
		if prog != name {
			delete(spec.Programs, prog)
		}
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: pinned})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	return coll, nil
}

// probePacket builds the packet of p, with an Ethernet header unless p.L3.
func probePacket(p Probe) ([]byte, error) {
	src, dst := p.Src.Addr().Unmap(), p.Dst.Addr().Unmap()
	if src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("explain: source %s and destination %s are of different families", src, dst)
	}

	var l4 []byte
	proto := p.Proto
	switch proto {
	case pkt.ProtoTCP:
		l4 = pkt.TCPWithFlags(p.Src.Port(), p.Dst.Port(), p.TCPFlags)
	case pkt.ProtoUDP:
		l4 = pkt.UDP(p.Src.Port(), p.Dst.Port(), make([]byte, 8))
	case pkt.ProtoICMP, pkt.ProtoICMPv6:
		proto, l4 = pkt.ProtoICMP, pkt.ICMP(8, 0)
		if dst.Is6() {
			proto, l4 = pkt.ProtoICMPv6, pkt.ICMP(128, 0)
		}
	default:
		return nil, fmt.Errorf("explain: protocol %d: only tcp, udp and icmp can be explained", p.Proto)
	}

	var ip []byte
	etherType := uint16(pkt.EtherIPv4)
	if dst.Is4() {
		ip = pkt.IPv4(src, dst, proto, pkt.IPv4Options{}, l4)
	} else {
		etherType, ip = pkt.EtherIPv6, pkt.IPv6(src, dst, proto, l4)
	}
	if p.L3 {
		return ip, nil
	}
	return pkt.Ether(etherType, ip), nil
}

// skbContext is the start of struct __sk_buff up to ifindex, the fields
// BPF_PROG_TEST_RUN takes for a tc program; the rest stays zero.
type skbContext struct {
	Len, PktType, Mark, QueueMapping, Protocol, VLANPresent, VLANTCI, VLANProto uint32
	Priority, IngressIfindex, Ifindex                                           uint32
}

// runProbe runs prog once on packet, as if it crossed p.Ifindex.
func runProbe(prog *ebpf.Program, p Probe, packet []byte) error {
	opts := &ebpf.RunOptions{Data: packet, Repeat: 1}
	if prog.Type() == ebpf.XDP {
		opts.Context = xdpContext{DataEnd: uint32(len(packet)), IngressIfindex: uint32(p.Ifindex)}
	} else {
		opts.Context = skbContext{Ifindex: uint32(p.Ifindex), Mark: p.Mark}
	}
	if _, err := prog.Run(opts); err != nil {
		return fmt.Errorf("explain: run the program on interface %d: %w", p.Ifindex, err)
	}
	return nil
}

// readExplanation reads what the twin decided and adds the flow and
// learned entries the probe belongs to.
func readExplanation(out *ebpf.Map, pinned map[string]*ebpf.Map, p Probe) (*Explanation, error) {
	var e edgewardEwExplanation
	if err := out.Lookup(uint32(0), &e); err != nil {
		return nil, fmt.Errorf("explain: read the decision: %w", err)
	}
	if e.Decided == 0 {
		return nil, fmt.Errorf("explain: the %s program returned without recording a decision; this build's programs are broken, report it with the command line", p.Hook)
	}

	x := &Explanation{
		Hook: Hook(e.Hook), Verdict: Verdict(e.Verdict), Reason: Reason(e.Reason),
		Generation: e.Generation, Endpoint: e.Endpoint, LearnedExpired: e.LearnedExpired != 0,
	}
	now, err := bootNow()
	if err != nil {
		return nil, err
	}
	x.Flow = lookupFlow(pinned["ew_flows"], p, now)
	x.Learned = lookupLearned(pinned["ew_learned_dests"], p, now)
	return x, nil
}

// lookupFlow finds the flow entry of p: the flow it opens when it leaves,
// the flow it answers when it arrives from the uplink.
func lookupFlow(flows *ebpf.Map, p Probe, now time.Duration) *FlowEntry {
	if p.Proto != pkt.ProtoTCP && p.Proto != pkt.ProtoUDP {
		return nil
	}
	local, remote := p.Src, p.Dst
	if p.Hook == HookUplinkIngress {
		local, remote = p.Dst, p.Src
	}
	key, _ := seedKey(SeedFlow{Proto: config.Proto(p.Proto), Local: local, Remote: remote})

	var f edgewardEwFlow
	if err := flows.Lookup(&key, &f); err != nil {
		return nil
	}
	left := time.Duration(f.Expires) - now
	if left <= 0 {
		return nil
	}
	state := fmt.Sprint(f.State)
	switch f.State {
	case 0:
		state = "new"
	case 1:
		state = "established"
	}
	return &FlowEntry{State: state, Lifetime: left, Reason: Reason(f.Reason)}
}

// lookupLearned finds the learned entry of p's remote address, live or
// expired (an expired entry shows a lifetime <= 0).
func lookupLearned(learned *ebpf.Map, p Probe, now time.Duration) *LearnedDest {
	remote := p.Dst.Addr()
	if p.Hook == HookUplinkIngress {
		remote = p.Src.Addr()
	}
	key := learnedKey(remote)

	var v edgewardEwLearned
	if err := learned.Lookup(&key, &v); err != nil {
		return nil
	}
	d := &LearnedDest{Addr: remote.Unmap(), Lifetime: time.Duration(v.Expires) - now, Name: v.Name}
	for _, r := range v.Ranges[:min(int(v.Nranges), MaxPortRanges)] {
		d.Ports = append(d.Ports, config.PortRange{Proto: config.Proto(r.Proto), First: r.First, Last: r.Last})
	}
	return d
}

// ActiveMatches tells whether p, compiled from a config file, has the shape
// of the active policy: the same mode, learning, prefix lengths, services
// and entry counts. A config edited since the last reload usually differs;
// one that differs only in names or addresses of the same shape does not
// show.
func (m *Maps) ActiveMatches(p *Policy) (bool, error) {
	slot, err := readActiveSlot(m.active)
	if err != nil {
		return false, err
	}
	var s edgewardEwSettings
	if err := m.settings.Lookup(slot, &s); err != nil {
		return false, fmt.Errorf("read policy settings: %w", err)
	}
	want := p.settings
	want.Generation = s.Generation
	return s == want, nil
}
