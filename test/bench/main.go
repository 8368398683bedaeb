// Command bench measures Edgeward against baselines measured in the same
// run and prints a table per part; `make bench` runs it as root and keeps
// the output under bench/ with the machine's CPU model and kernel.
//
// Data plane: ns per packet of the egress program with BPF_PROG_TEST_RUN,
// on the allow and the deny path, IPv4 and IPv6, at several policy sizes,
// next to an empty program of the same type (the floor).
//
// Pipeline: a gateway namespace drops a generator's UDP on its LAN veth
// with each filter in turn (no filter, iptables, nftables, xdp_lan native
// and generic): CPU per packet at a fixed rate from trafgen, then the drop
// rate against the kernel's own frame generator (BPF_PROG_TEST_RUN in
// live-frame mode), whose xdp_frames arrive as from a NIC.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

func main() {
	out := flag.String("out", "", "also write the results to this `file`")
	repeat := flag.Int("repeat", 200000, "BPF_PROG_TEST_RUN repetitions per measurement")
	rounds := flag.Int("rounds", 5, "measurements per figure; the median is reported")
	entries := flag.Int("entries", 1000, "rules, set elements and endpoints in the pipeline comparison")
	rate := flag.Int("rate", 200000, "offered packets/s in the pipeline comparison")
	packets := flag.Int("packets", 600000, "packets per filter and round in the pipeline comparison")
	frames := flag.Int("frames", 3000000, "at most this many frames per filter and round from the kernel's frame generator in the pipeline comparison")
	bin := flag.String("bin", "bin/edgeward", "the edgeward binary for the DNS benchmark")
	dnsSeconds := flag.Int("dns-seconds", 5, "seconds of dnsperf per path")
	only := flag.String("only", "", "run only these `parts` (comma separated: dataplane, xdp, pipeline, dns, transparent)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the benchmark driver to `file`")
	flag.Parse()

	var w io.Writer = os.Stdout
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			fatal(err)
		}
		f, err := os.Create(*out)
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}

	if *cpuProfile != "" {
		stop, err := startProfile(*cpuProfile)
		if err != nil {
			fatal(err)
		}
		defer stop()
	}
	printMachine(w)
	parts := []struct {
		name string
		run  func() error
	}{
		{"dataplane", func() error { return benchDataPlane(w, *repeat, *rounds) }},
		{"xdp", func() error { return benchXDPPrograms(w, *repeat, *rounds) }},
		{"pipeline", func() error { return benchPipeline(w, *entries, *rate, *packets, *frames) }},
		{"dns", func() error { return benchDNS(w, *bin, *dnsSeconds) }},
		{"transparent", func() error { return benchTransparentDNS(w, *bin, *dnsSeconds) }},
	}
	for _, p := range parts {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), p.name) {
			continue
		}
		if err := p.run(); err != nil {
			fatal(fmt.Errorf("%s: %w", p.name, err))
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// printMachine records what the figures were measured on.
func printMachine(w io.Writer) {
	fmt.Fprintf(w, "date:   %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "cpu:    %s\n", cpuModel())
	fmt.Fprintf(w, "kernel: %s\n\n", kernelRelease())
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return "unknown"
}

func kernelRelease() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(data))
}

func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
