package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"

	"github.com/edgeward/edgeward/internal/testcgroup"
)

// The DNS benchmark: a client namespace queries a gateway namespace, once
// through the guard (which forwards to the upstream and writes every
// answer into the kernel map before replying) and once directly against
// the same upstream, in the same run.
const (
	dnsGateway  = "10.53.0.1"
	dnsClient   = "10.53.0.2"
	dnsUpstream = 5300
	dnsNames    = 1000
)

func benchDNS(w io.Writer, bin string, seconds int) error {
	if _, err := os.Stat("/usr/bin/dnsperf"); err != nil {
		return fmt.Errorf("dnsperf (Debian package dnsperf) is needed: %w", err)
	}
	prefix := fmt.Sprintf("ewdns%d-", os.Getpid())
	gw, err := newNS(prefix + "gw")
	if err != nil {
		return err
	}
	defer gw.remove()
	client, err := newNS(prefix + "client")
	if err != nil {
		return err
	}
	defer client.remove()
	for _, s := range []struct {
		ns  *benchNS
		cmd string
	}{
		{gw, "ip link add g0 type veth peer name c0 netns " + client.name},
		{gw, "ip addr add " + dnsGateway + "/24 dev g0"},
		{gw, "ip link set g0 up"},
		{client, "ip addr add " + dnsClient + "/24 dev c0"},
		{client, "ip link set c0 up"},
	} {
		if err := s.ns.sh(s.cmd); err != nil {
			return err
		}
	}

	dir, err := os.MkdirTemp("", "edgeward-dnsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	stop, err := startDNSServers(gw, dir, bin)
	if err != nil {
		return err
	}
	defer stop()

	queries := filepath.Join(dir, "queries")
	if err := writeQueries(queries); err != nil {
		return err
	}
	guard, err := runDNSPerf(client, dnsGateway, 53, queries, seconds)
	if err != nil {
		return fmt.Errorf("through the guard: %w", err)
	}
	direct, err := runDNSPerf(client, dnsGateway, dnsUpstream, queries, seconds)
	if err != nil {
		return fmt.Errorf("direct: %w", err)
	}
	guardLat, err := sampleLatency(client, dnsGateway, 53)
	if err != nil {
		return err
	}
	directLat, err := sampleLatency(client, dnsGateway, dnsUpstream)
	if err != nil {
		return err
	}

	fmt.Fprintf(w, "DNS: dnsperf for %d s against edgeward's guard (learning into the kernel map) and directly against its upstream, %d names; latency from 2000 sequential queries\n", seconds, dnsNames)
	fmt.Fprintln(w, "goal: at least 20,000 queries/s through the guard and under 1 ms added p99")
	printDNSPaths(w, dnsPath{"guard", guard, guardLat}, dnsPath{"direct", direct, directLat})
	return nil
}

// dnsPath is what one path of a DNS benchmark measured.
type dnsPath struct {
	name string
	perf dnsPerfResult
	lat  []time.Duration
}

// printDNSPaths prints a path and its baseline, and their ratio.
func printDNSPaths(w io.Writer, path, base dnsPath) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tqueries/s\tlost\tp50 ms\tp99 ms\t")
	for _, r := range []dnsPath{path, base} {
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%.3f\t%.3f\t\n", r.name, r.perf.qps, r.perf.lost, ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)))
	}
	tw.Flush()
	fmt.Fprintf(w, "%s/%s: queries/s %.2f, added p99 %.3f ms\n\n", path.name, base.name,
		path.perf.qps/base.perf.qps, ms(percentile(path.lat, 99)-percentile(base.lat, 99)))
}

// startDNSServers starts, in the gateway namespace, the upstream (an
// authoritative server for partner.test, served by this process) and
// `edgeward run` with the guard in front of it, g0 as its LAN.
func startDNSServers(gw *benchNS, dir, bin string) (func(), error) {
	pins := filepath.Join(dir, "bpffs")
	unmount, err := mountBPFFS(pins)
	if err != nil {
		return nil, err
	}

	var upPC net.PacketConn
	err = gw.do(func() error {
		var err error
		upPC, err = net.ListenPacket("udp", net.JoinHostPort(dnsGateway, strconv.Itoa(dnsUpstream)))
		return err
	})
	if err != nil {
		unmount()
		return nil, err
	}
	upstream := &dns.Server{PacketConn: upPC, Handler: dns.HandlerFunc(answerBench)}
	go upstream.ActivateAndServe()

	cg, err := benchCgroup(dir)
	if err != nil {
		upstream.Shutdown()
		unmount()
		return nil, err
	}
	cfg := filepath.Join(dir, "edgeward.yaml")
	if err := os.WriteFile(cfg, []byte(benchDNSConfig(pins, dir, cg.Path)), 0o600); err != nil {
		upstream.Shutdown()
		cg.Remove()
		unmount()
		return nil, err
	}
	daemon, err := startDaemon(gw, bin, cfg, filepath.Join(dir, "edgeward.log"), cg)
	if err != nil {
		upstream.Shutdown()
		cg.Remove()
		unmount()
		return nil, err
	}
	return func() {
		daemon.Process.Signal(os.Interrupt)
		daemon.Wait()
		gw.sh(bin + " unload -c " + cfg)
		upstream.Shutdown()
		cg.Remove()
		unmount()
	}, nil
}

// startDaemon runs edgeward in a namespace and waits until it is ready.
// It refuses a config whose paths.cgroup is not cg: the socket guard must
// cover the benchmark's own cgroup, never the machine's.
func startDaemon(ns *benchNS, bin, cfg, logPath string, cg *testcgroup.Cgroup) (*exec.Cmd, error) {
	if err := cg.CheckConfig(cfg); err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command("ip", "netns", "exec", ns.name, bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		data, _ := os.ReadFile(logPath)
		if strings.Contains(string(data), "msg=ready") {
			return cmd, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	data, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("edgeward did not get ready:\n%s", data)
}

func benchDNSConfig(pins, dir, cgroup string) string {
	// The upstream's port is a LAN service, so that the direct
	// measurement passes the gateway's LAN hook too.
	return fmt.Sprintf(`interfaces:
  lan: [g0]
  lan_services: [udp/%[2]d]
dns:
  listen: [%[1]s:53]
  upstreams:
    - zones: [partner.test]
      servers: [%[1]s:%[2]d]
  names:
    - match: "*.partner.test"
      ports: [tcp/8883]
      answers_in: [198.18.0.0/16]
metrics:
  listen: 127.0.0.1:9470
paths:
  bpffs: %[3]s/edgeward
  state: %[4]s/state
  socket: %[4]s/edgeward.sock
  cgroup: %[5]s
`, dnsGateway, dnsUpstream, pins, dir, cgroup)
}

// answerBench answers hN.partner.test with 198.18.N/256.N%256.
func answerBench(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	q := req.Question[0]
	label, _, _ := strings.Cut(strings.ToLower(q.Name), ".")
	n, err := strconv.Atoi(strings.TrimPrefix(label, "h"))
	if err != nil || q.Qtype != dns.TypeA {
		resp.Rcode = dns.RcodeNameError
		w.WriteMsg(resp)
		return
	}
	resp.Answer = []dns.RR{&dns.A{
		Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
		A:   net.IPv4(198, 18, byte(n/256), byte(n%256)),
	}}
	w.WriteMsg(resp)
}

func writeQueries(path string) error {
	var sb strings.Builder
	for i := range dnsNames {
		fmt.Fprintf(&sb, "h%d.partner.test A\n", i+1)
	}
	return os.WriteFile(path, []byte(sb.String()), 0o600)
}

type dnsPerfResult struct {
	qps  float64
	lost int
}

var (
	perfQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	perfLost = regexp.MustCompile(`Queries lost:\s+(\d+)`)
)

// runDNSPerf runs dnsperf from the client namespace against server:port.
func runDNSPerf(client *benchNS, server string, port int, queries string, seconds int) (dnsPerfResult, error) {
	out, err := client.output(fmt.Sprintf("dnsperf -s %s -p %d -d %s -l %d -c 8 -T 2 -q 256", server, port, queries, seconds))
	if err != nil {
		return dnsPerfResult{}, err
	}
	q, l := perfQPS.FindStringSubmatch(out), perfLost.FindStringSubmatch(out)
	if q == nil || l == nil {
		return dnsPerfResult{}, fmt.Errorf("unexpected dnsperf output:\n%s", out)
	}
	qps, _ := strconv.ParseFloat(q[1], 64)
	lost, _ := strconv.Atoi(l[1])
	return dnsPerfResult{qps: qps, lost: lost}, nil
}

// sampleLatency times 2000 sequential queries from the client namespace
// to host:port.
func sampleLatency(client *benchNS, host string, port int) ([]time.Duration, error) {
	var out []time.Duration
	err := client.do(func() error {
		c := &dns.Client{Timeout: 2 * time.Second}
		server := net.JoinHostPort(host, strconv.Itoa(port))
		for i := range 2000 {
			m := new(dns.Msg)
			m.SetQuestion(fmt.Sprintf("h%d.partner.test.", i%dnsNames+1), dns.TypeA)
			began := time.Now()
			if _, _, err := c.Exchange(m, server); err != nil {
				return err
			}
			out = append(out, time.Since(began))
		}
		return nil
	})
	return out, err
}

func percentile(xs []time.Duration, p int) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
