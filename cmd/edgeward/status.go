package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/netwatch"
)

// cmdStatus prints what the kernel enforces in the current network
// namespace. It reads the pins, so it works whether the daemon runs or not.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	f := newFlags("status", stderr)
	if status, ok := f.parse(args); !ok {
		return status
	}
	cfg, ok := f.loadConfig(stderr)
	if !ok {
		return exitUsage
	}

	maps, err := loader.OpenPinned(cfg.Paths.BPFFS)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "not loaded: nothing pinned under %s\n", cfg.Paths.BPFFS)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgeward status: %v\n", err)
		return exitFailure
	}
	defer maps.Close()

	if err := printStatus(stdout, cfg, maps); err != nil {
		fmt.Fprintf(stderr, "edgeward status: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func printStatus(w io.Writer, cfg *config.Config, maps *loader.Maps) error {
	if err := printPolicy(w, maps); err != nil {
		return err
	}
	if err := printInterfaces(w, cfg); err != nil {
		return err
	}
	return printCounters(w, maps)
}

func printPolicy(w io.Writer, maps *loader.Maps) error {
	p, ok, err := maps.ActivePolicy()
	if err != nil {
		return err
	}
	if !ok {
		fmt.Fprintln(w, "policy:     none applied (uplinks drop everything but link needs)")
		return nil
	}
	mode := "enforce"
	if p.Audit {
		mode = "audit"
	}
	fmt.Fprintf(w, "mode:       %s\n", mode)
	fmt.Fprintf(w, "generation: %d\n", p.Generation)
	fmt.Fprintf(w, "policy:     %d of %d entries\n", p.Entries, loader.MaxRules)
	return nil
}

// printInterfaces lists every interface with its role under cfg and the
// hook found attached to it in the kernel.
func printInterfaces(w io.Writer, cfg *config.Config) error {
	links, err := netwatch.List()
	if err != nil {
		return err
	}
	attached, err := loader.Attachments(cfg.Paths.BPFFS)
	if err != nil {
		return err
	}
	hooks := map[int][]string{}
	for _, a := range attached {
		hooks[a.Ifindex] = append(hooks[a.Ifindex], fmt.Sprintf("%s (%s)", a.Hook, a.Mode))
	}

	fmt.Fprintln(w, "\ninterfaces:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tROLE\tHOOKS")
	for _, l := range links {
		list := strings.Join(hooks[l.Index], ", ")
		if list == "" {
			list = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", l.Name, cfg.Classify(l.Name), list)
	}
	return tw.Flush()
}

func printCounters(w io.Writer, maps *loader.Maps) error {
	counters, err := maps.Counters()
	if err != nil {
		return err
	}

	fmt.Fprintln(w, "\ncounters:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  HOOK\tVERDICT\tREASON\tPACKETS\tBYTES\t")
	for _, c := range counters {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t\n", c.Hook, c.Verdict, c.Reason, c.Packets, c.Bytes)
	}
	return tw.Flush()
}
