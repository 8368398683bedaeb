package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The transparent DNS benchmark: a client namespace queries the upstream
// directly, through the gateway namespace, which forwards it. The same
// traffic is measured twice in one run: with transparent mode on (every
// query and answer queued and judged, every answer learned into the
// kernel map before it passes) and after a reload that turns it off
// (plain forwarding through the same programs).
const (
	tClient   = "10.55.0.2"
	tGwLAN    = "10.55.0.1"
	tGwUp     = "10.56.0.1"
	tUpstream = "10.56.0.2"
)

func benchTransparentDNS(w io.Writer, bin string, seconds int) error {
	nss, err := transparentTopology()
	if err != nil {
		return err
	}
	defer func() {
		for _, ns := range nss {
			ns.remove()
		}
	}()
	gw, client, up := nss[0], nss[1], nss[2]

	dir, err := os.MkdirTemp("", "edgeward-tdnsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	stopUpstream, err := serveUpstream(up)
	if err != nil {
		return err
	}
	defer stopUpstream()

	pins := filepath.Join(dir, "bpffs")
	unmount, err := mountBPFFS(pins)
	if err != nil {
		return err
	}
	defer unmount()
	cg, err := benchCgroup(dir)
	if err != nil {
		return err
	}
	defer cg.Remove()
	cfg := filepath.Join(dir, "edgeward.yaml")
	if err := os.WriteFile(cfg, []byte(transparentConfig(pins, dir, cg.Path, true)), 0o600); err != nil {
		return err
	}
	daemon, err := startDaemon(gw, bin, cfg, filepath.Join(dir, "edgeward.log"), cg)
	if err != nil {
		return err
	}
	defer func() {
		daemon.Process.Signal(os.Interrupt)
		daemon.Wait()
		gw.sh(bin + " unload -c " + cfg)
	}()

	queries := filepath.Join(dir, "queries")
	if err := writeQueries(queries); err != nil {
		return err
	}
	queued, queuedLat, err := measureDNSPath(client, queries, seconds)
	if err != nil {
		return fmt.Errorf("with transparent mode: %w", err)
	}

	if err := os.WriteFile(cfg, []byte(transparentConfig(pins, dir, cg.Path, false)), 0o600); err != nil {
		return err
	}
	if err := gw.sh(bin + " reload -c " + cfg); err != nil {
		return err
	}
	plain, plainLat, err := measureDNSPath(client, queries, seconds)
	if err != nil {
		return fmt.Errorf("without transparent mode: %w", err)
	}

	fmt.Fprintf(w, "DNS transparent mode: dnsperf for %d s from a client straight to the upstream through the gateway, %d names,\n", seconds, dnsNames)
	fmt.Fprintln(w, "with the queue (each query and answer judged, each answer learned into the kernel map) and without it (reloaded, plain forwarding); latency from 2000 sequential queries")
	printDNSPaths(w, dnsPath{"queued", queued, queuedLat}, dnsPath{"not intercepted", plain, plainLat})
	return nil
}

// measureDNSPath runs dnsperf and the latency sample against the upstream.
func measureDNSPath(client *benchNS, queries string, seconds int) (dnsPerfResult, []time.Duration, error) {
	perf, err := runDNSPerf(client, tUpstream, 53, queries, seconds)
	if err != nil {
		return perf, nil, err
	}
	lat, err := sampleLatency(client, tUpstream, 53)
	return perf, lat, err
}

// transparentTopology makes the gateway, client and upstream namespaces:
// client c0 -- g0 gateway u0 -- p0 upstream, the gateway forwarding.
func transparentTopology() ([]*benchNS, error) {
	prefix := fmt.Sprintf("ewtdns%d-", os.Getpid())
	var nss []*benchNS
	for _, name := range []string{"gw", "client", "up"} {
		ns, err := newNS(prefix + name)
		if err != nil {
			for _, n := range nss {
				n.remove()
			}
			return nil, err
		}
		nss = append(nss, ns)
	}
	gw, client, up := nss[0], nss[1], nss[2]
	for _, s := range []struct {
		ns  *benchNS
		cmd string
	}{
		{gw, "ip link add g0 type veth peer name c0 netns " + client.name},
		{gw, "ip link add u0 type veth peer name p0 netns " + up.name},
		{gw, "ip addr add " + tGwLAN + "/24 dev g0"},
		{gw, "ip addr add " + tGwUp + "/24 dev u0"},
		{gw, "ip link set g0 up"},
		{gw, "ip link set u0 up"},
		{gw, "sysctl -qw net.ipv4.ip_forward=1"},
		{client, "ip addr add " + tClient + "/24 dev c0"},
		{client, "ip link set c0 up"},
		{client, "ip route add default via " + tGwLAN},
		{up, "ip addr add " + tUpstream + "/24 dev p0"},
		{up, "ip link set p0 up"},
		{up, "ip route add default via " + tGwUp},
	} {
		if err := s.ns.sh(s.cmd); err != nil {
			for _, n := range nss {
				n.remove()
			}
			return nil, err
		}
	}
	return nss, nil
}

// serveUpstream serves answerBench on port 53 in the upstream namespace.
func serveUpstream(up *benchNS) (func(), error) {
	var pc net.PacketConn
	err := up.do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(tUpstream, "53"))
		return err
	})
	if err != nil {
		return nil, err
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(answerBench)}
	go srv.ActivateAndServe()
	return func() { srv.Shutdown() }, nil
}

// transparentConfig: g0 is the LAN, u0 leads to the upstream as a VPN
// interface would, so forwarded DNS passes the data plane; the guard
// listens on the LAN address either way.
func transparentConfig(pins, dir, cgroup string, transparent bool) string {
	cfg := fmt.Sprintf(`interfaces:
  lan: [g0]
  vpn: [u0]
dns:
  listen: [%[1]s:53]
  transparent: %[2]v
  upstreams:
    - zones: [partner.test]
      servers: [%[3]s:53]
  names:
    - match: "*.partner.test"
      ports: [tcp/8883]
      answers_in: [198.18.0.0/16]
metrics:
  listen: 127.0.0.1:9470
paths:
  bpffs: %[4]s/edgeward
  state: %[5]s/state
  socket: %[5]s/edgeward.sock
  cgroup: %[6]s
`, tGwLAN, transparent, tUpstream, pins, dir, cgroup)
	return strings.TrimLeft(cfg, "\n")
}
