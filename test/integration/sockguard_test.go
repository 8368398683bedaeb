package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/internal/pkt"
	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// rawSendEnv makes the test binary run rawSend instead of the tests: the
// socket guard tests start it in the gateway, in or outside the guarded
// cgroup. Its settings come in rawSend* variables.
const (
	rawSendEnv      = "EDGEWARD_RAWSEND"         // "frames" or "bypass-loop"
	rawSendIface    = "EDGEWARD_RAWSEND_IFACE"   // interface to send on
	rawSendDstMAC   = "EDGEWARD_RAWSEND_DSTMAC"  // next hop's MAC
	rawSendSrc      = "EDGEWARD_RAWSEND_SRC"     // source IPv4 address
	rawSendDst      = "EDGEWARD_RAWSEND_DST"     // destination ip:port
	rawSendBypass   = "EDGEWARD_RAWSEND_BYPASS"  // "1": set PACKET_QDISC_BYPASS
	rawSendFirst    = "EDGEWARD_RAWSEND_FIRST"   // sequence number of the first frame
	rawSendCount    = "EDGEWARD_RAWSEND_COUNT"   // frames to send
	rawSendDuration = "EDGEWARD_RAWSEND_SECONDS" // bypass-loop: how long
)

// exitRefused is rawSend's exit status when the socket option is refused.
const exitRefused = 3

// rawSend runs the mode rawSendEnv names and returns the exit status.
func rawSend() int {
	var err error
	switch os.Getenv(rawSendEnv) {
	case "frames":
		err = sendFrames()
	case "bypass-loop":
		err = bypassLoop()
	default:
		err = fmt.Errorf("unknown %s=%q", rawSendEnv, os.Getenv(rawSendEnv))
	}
	if errors.Is(err, unix.EPERM) {
		fmt.Println("refused:", err)
		return exitRefused
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
}

// sendFrames sends numbered UDP datagrams as whole Ethernet frames from an
// AF_PACKET socket, with PACKET_QDISC_BYPASS when asked: the way a process
// with CAP_NET_RAW gets around tc egress.
func sendFrames() error {
	ifc, err := net.InterfaceByName(os.Getenv(rawSendIface))
	if err != nil {
		return err
	}
	dstMAC, err := net.ParseMAC(os.Getenv(rawSendDstMAC))
	if err != nil {
		return err
	}
	src, err := netip.ParseAddr(os.Getenv(rawSendSrc))
	if err != nil {
		return err
	}
	dst, err := netip.ParseAddrPort(os.Getenv(rawSendDst))
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(os.Getenv(rawSendCount))
	if err != nil {
		return err
	}
	first, err := strconv.Atoi(os.Getenv(rawSendFirst))
	if err != nil {
		return err
	}

	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	if os.Getenv(rawSendBypass) == "1" {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("setsockopt PACKET_QDISC_BYPASS: %w", err)
		}
	}
	to := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6, Protocol: htons(unix.ETH_P_IP)}
	copy(to.Addr[:], dstMAC)
	dropped := 0
	for seq := range n {
		frame := udpFrame(ifc.HardwareAddr, dstMAC, src, dst, uint32(first+seq))
		err := unix.Sendto(fd, frame, 0, to)
		switch {
		case errors.Is(err, unix.ENOBUFS):
			dropped++ // tc egress dropped it
		case err != nil:
			return fmt.Errorf("send: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("sent %d, dropped on the way out %d\n", n, dropped)
	return nil
}

// udpFrame is an Ethernet frame holding a UDP datagram whose payload
// starts with seq, with a valid IPv4 header checksum.
func udpFrame(srcMAC, dstMAC net.HardwareAddr, src netip.Addr, dst netip.AddrPort, seq uint32) []byte {
	payload := binary.BigEndian.AppendUint32(nil, seq)
	ip := pkt.IPv4(src, dst.Addr(), pkt.ProtoUDP, pkt.IPv4Options{}, pkt.UDP(40000, dst.Port(), payload))
	pkt.SetIPv4Checksum(ip)
	frame := append(append(append([]byte{}, dstMAC...), srcMAC...), 0x08, 0x00)
	return append(frame, ip...)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// bypassLoop tries PACKET_QDISC_BYPASS on a fresh AF_PACKET socket every
// millisecond, for the given seconds or until SIGTERM, and prints how
// often it was allowed and refused.
func bypassLoop() error {
	seconds, err := strconv.ParseFloat(os.Getenv(rawSendDuration), 64)
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	var allowed, refused int
	for end := time.Now().Add(time.Duration(seconds * float64(time.Second))); time.Now().Before(end) && len(stop) == 0; {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
		unix.Close(fd)
		switch {
		case err == nil:
			allowed++
		case errors.Is(err, unix.EPERM):
			refused++
		default:
			return err
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("allowed %d refused %d\n", allowed, refused)
	return nil
}

// rawSendCmd prepares rawSend in the gateway with env set, in the
// guarded cgroup when guarded is set. Close the returned file once the
// command started.
func (g *gateway) rawSendCmd(ctx context.Context, guarded bool, env ...string) (*exec.Cmd, *os.File) {
	g.t.Helper()
	cmd := g.sb.Command(ctx, sb.Gateway, os.Args[0], "-test.run=^$")
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if !guarded {
		return cmd, nil
	}
	cg, err := g.sb.CgroupFile()
	if err != nil {
		g.t.Fatal(err)
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(cg.Fd())
	return cmd, cg
}

// sendBypassFrames runs sendFrames in the gateway: n datagrams to dst
// leaving wan0, numbered from first, with or without PACKET_QDISC_BYPASS,
// from a process in the guarded cgroup or outside it. It returns the exit
// status and the output.
func (g *gateway) sendBypassFrames(guarded, bypass bool, dst string, first, n int) (int, string) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(g.t.Context(), 30*time.Second)
	defer cancel()
	cmd, cg := g.rawSendCmd(ctx, guarded,
		rawSendEnv+"=frames", rawSendIface+"="+sb.GatewayWANIface, rawSendDstMAC+"="+g.macOf(sb.WAN, sb.WANUplinkIface),
		rawSendSrc+"="+sb.GatewayWAN4, rawSendDst+"="+dst, rawSendBypass+"="+boolFlag(bypass),
		rawSendFirst+"="+strconv.Itoa(first), rawSendCount+"="+strconv.Itoa(n))
	if cg != nil {
		defer cg.Close()
	}
	out, err := cmd.CombinedOutput()
	return exitCode(err), string(out)
}

func boolFlag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// bypassAttempts runs bypassLoop in the guarded cgroup in the gateway
// until stop is closed (at most a minute) and then reports how often the
// option was allowed and refused. It may run on any goroutine.
func (g *gateway) bypassAttempts(stop <-chan struct{}) (allowed, refused int, err error) {
	var out strings.Builder
	cg, err := g.sb.CgroupFile()
	if err != nil {
		return 0, 0, err
	}
	cmd := g.sb.Command(g.t.Context(), sb.Gateway, os.Args[0], "-test.run=^$")
	cmd.Env = append(cmd.Env, rawSendEnv+"=bypass-loop", rawSendDuration+"=60")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	err = cmd.Start()
	cg.Close()
	if err != nil {
		return 0, 0, err
	}
	<-stop
	// ip netns exec execs the helper: the signal reaches it.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("bypass loop: %w\n%s", err, out.String())
	}
	if _, err := fmt.Sscanf(out.String(), "allowed %d refused %d", &allowed, &refused); err != nil {
		return 0, 0, fmt.Errorf("bypass loop printed %q: %w", out.String(), err)
	}
	return allowed, refused, nil
}

// macOf returns the MAC address of iface in host h.
func (g *gateway) macOf(h sb.Host, iface string) string {
	g.t.Helper()
	var mac string
	err := g.sb.Do(h, func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		return nil
	})
	if err != nil {
		g.t.Fatal(err)
	}
	return mac
}

// guardPrograms asks the kernel (BPF_PROG_QUERY) how many setsockopt
// programs the sandbox's cgroup carries.
func (g *gateway) guardPrograms() int {
	g.t.Helper()
	cg, err := g.sb.CgroupFile()
	if err != nil {
		g.t.Fatal(err)
	}
	defer cg.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: ebpf.AttachCGroupSetsockopt})
	if err != nil {
		g.t.Fatal(err)
	}
	return len(res.Programs)
}

// TestSocketGuardClosesQdiscBypass shows the hole and its closing. A raw
// AF_PACKET socket on the gateway with PACKET_QDISC_BYPASS sends frames
// that skip tc egress: from a process outside the guarded cgroup they
// reach the internet host, which the policy denies (without the option
// the same frames are dropped). A process inside the guarded cgroup
// cannot set the option; the refusal is counted once per attempt.
func TestSocketGuardClosesQdiscBypass(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	g.start()
	if n := g.guardPrograms(); n != 1 {
		t.Fatalf("the sandbox's cgroup carries %d setsockopt programs, want 1 (the guard)", n)
	}
	const n = 20
	dst := sb.Addr(sb.InternetHost4, 5370)
	recv := g.countUDP(sb.WAN, dst)

	if code, out := g.sendBypassFrames(false, false, dst, 0, n); code != 0 {
		t.Fatalf("frames without the option, outside the cgroup: exit %d\n%s", code, out)
	}
	time.Sleep(200 * time.Millisecond)
	if got := recv.count(); got != 0 {
		t.Fatalf("%d of %d frames without PACKET_QDISC_BYPASS reached the internet host: tc egress should drop them", got, n)
	}

	// The hole: outside the guarded cgroup the option skips tc egress.
	if code, out := g.sendBypassFrames(false, true, dst, 1000, n); code != 0 {
		t.Fatalf("frames with the option, outside the cgroup: exit %d\n%s", code, out)
	}
	waitFor(t, 5*time.Second, func() error {
		if got := recv.count(); got != n {
			return fmt.Errorf("%d of %d bypassing frames from outside the guarded cgroup arrived", got, n)
		}
		return nil
	})

	before := g.counters()["socket/drop/qdisc_bypass"]
	for i := range 3 {
		code, out := g.sendBypassFrames(true, true, dst, 2000+100*i, n)
		if code != exitRefused || !strings.Contains(out, "operation not permitted") {
			t.Errorf("frames with the option, inside the guarded cgroup: exit %d, want %d (EPERM)\n%s", code, exitRefused, out)
		}
	}
	if got := g.counters()["socket/drop/qdisc_bypass"] - before; got != 3 {
		t.Errorf("socket/drop/qdisc_bypass grew by %d, want 3", got)
	}
	time.Sleep(200 * time.Millisecond)
	if got := recv.count(); got != n {
		t.Errorf("%d frames arrived, want the %d of the hole and none from inside the cgroup", got, n)
	}

	// Inside the cgroup a packet socket without the option still works,
	// and its frames meet tc egress.
	arrived := recv.count()
	if code, out := g.sendBypassFrames(true, false, dst, 3000, n); code != 0 {
		t.Errorf("frames without the option, inside the cgroup: exit %d\n%s", code, out)
	}
	time.Sleep(200 * time.Millisecond)
	if got := recv.count() - arrived; got != 0 {
		t.Errorf("%d frames without the option from inside the cgroup arrived: tc egress should drop them", got)
	}
	metrics, err := g.sb.Curl(t.Context(), sb.Gateway, "http://127.0.0.1:9470/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if err := contains(metrics,
		`edgeward_socket_options_denied_total{reason="qdisc_bypass",verdict="drop"} 3`,
		`edgeward_socket_guard_attached 1`,
	); err != nil {
		t.Errorf("metrics: %v", err)
	}
	out, err := g.cli("status", "-c", g.cfgPath)
	if err != nil {
		t.Errorf("edgeward status: %v\n%s", err, out)
	}
	if err := contains(out, "socket guard: setsockopt on cgroup "+g.sb.Cgroup, "drop     qdisc_bypass  3"); err != nil {
		t.Errorf("status: %v\n%s", err, out)
	}
}

// TestSocketGuardWithoutCgroup2: under `ip netns exec`, which mounts a
// fresh /sys without the cgroup file systems, a file without
// paths.cgroup finds no cgroup v2 hierarchy; validate says the guard
// would be off and still accepts the file.
func TestSocketGuardWithoutCgroup2(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	path := strings.Replace(g.cfgPath, "edgeward.yaml", "no-cgroup.yaml", 1)
	writeFile(t, path, "mode: enforce\nmetrics: {listen: \"127.0.0.1:9471\"}\n")
	out, err := g.cli("validate", "-c", path)
	if err != nil || !strings.Contains(out, "warning: the socket guard would be off: "+path+": paths.cgroup: no cgroup v2 hierarchy is mounted") {
		t.Errorf("validate without a cgroup v2 hierarchy: %v\n%s", err, out)
	}
}
