package main

import (
	"encoding/json"
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

// statusReport is what `edgeward status` shows, as text or JSON.
type statusReport struct {
	Loaded     bool               `json:"loaded"`
	Mode       string             `json:"mode,omitempty"`
	Generation uint32             `json:"generation,omitempty"`
	Entries    int                `json:"policy_entries"`
	Capacity   int                `json:"policy_capacity"`
	Interfaces []statusIface      `json:"interfaces"`
	Counters   []statusCounter    `json:"counters"`
	EventsLost loader.EventLosses `json:"events_lost"`
}

type statusIface struct {
	Name  string       `json:"name"`
	Role  string       `json:"role"`
	Hooks []statusHook `json:"hooks"`
}

type statusHook struct {
	Hook string `json:"hook"`
	Mode string `json:"attach"`
}

type statusCounter struct {
	Hook    string `json:"hook"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// cmdStatus prints what the kernel enforces in the current network
// namespace. It reads the pins, so it works whether the daemon runs or not.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	f := newFlags("status", stderr)
	asJSON := f.Bool("json", false, "print JSON instead of tables")
	if status, ok := f.parse(args); !ok {
		return status
	}
	cfg, ok := f.loadConfig(stderr)
	if !ok {
		return exitUsage
	}

	report, err := readStatus(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "edgeward status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(report)
	} else {
		printStatus(stdout, cfg, report)
	}
	if !report.Loaded {
		return exitFailure
	}
	return exitOK
}

// readStatus collects the report from the pins and the interfaces.
func readStatus(cfg *config.Config) (*statusReport, error) {
	r := &statusReport{Capacity: loader.MaxRules, Interfaces: []statusIface{}, Counters: []statusCounter{}}
	maps, err := loader.OpenPinned(cfg.Paths.BPFFS)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	defer maps.Close()
	r.Loaded = true

	if err := r.readPolicy(maps); err != nil {
		return nil, err
	}
	if err := r.readInterfaces(cfg); err != nil {
		return nil, err
	}
	if err := r.readCounters(maps); err != nil {
		return nil, err
	}
	r.EventsLost, err = maps.EventLosses()
	return r, err
}

func (r *statusReport) readPolicy(maps *loader.Maps) error {
	p, ok, err := maps.ActivePolicy()
	if err != nil || !ok {
		return err
	}
	r.Mode, r.Generation, r.Entries = "enforce", p.Generation, p.Entries
	if p.Audit {
		r.Mode = "audit"
	}
	return nil
}

// readInterfaces lists every interface with its role under cfg and the
// hooks found attached to it in the kernel.
func (r *statusReport) readInterfaces(cfg *config.Config) error {
	links, err := netwatch.List()
	if err != nil {
		return err
	}
	attached, err := loader.Attachments(cfg.Paths.BPFFS)
	if err != nil {
		return err
	}
	hooks := map[int][]statusHook{}
	for _, a := range attached {
		hooks[a.Ifindex] = append(hooks[a.Ifindex], statusHook{Hook: a.Hook.String(), Mode: string(a.Mode)})
	}
	for _, l := range links {
		r.Interfaces = append(r.Interfaces, statusIface{
			Name: l.Name, Role: cfg.Classify(l.Name).String(), Hooks: append([]statusHook{}, hooks[l.Index]...),
		})
	}
	return nil
}

func (r *statusReport) readCounters(maps *loader.Maps) error {
	counters, err := maps.Counters()
	if err != nil {
		return err
	}
	for _, c := range counters {
		r.Counters = append(r.Counters, statusCounter{
			Hook: c.Hook.String(), Verdict: c.Verdict.String(), Reason: c.Reason.String(),
			Packets: c.Packets, Bytes: c.Bytes,
		})
	}
	return nil
}

// printStatus writes the report as tables.
func printStatus(w io.Writer, cfg *config.Config, r *statusReport) {
	if !r.Loaded {
		fmt.Fprintf(w, "not loaded: nothing pinned under %s\n", cfg.Paths.BPFFS)
		return
	}
	if r.Generation == 0 {
		fmt.Fprintln(w, "policy:     none applied (uplinks drop everything but link needs)")
	} else {
		fmt.Fprintf(w, "mode:       %s\n", r.Mode)
		fmt.Fprintf(w, "generation: %d\n", r.Generation)
		fmt.Fprintf(w, "policy:     %d of %d entries\n", r.Entries, r.Capacity)
	}

	fmt.Fprintln(w, "\ninterfaces:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tROLE\tHOOKS")
	for _, i := range r.Interfaces {
		var hooks []string
		for _, h := range i.Hooks {
			hooks = append(hooks, fmt.Sprintf("%s (%s)", h.Hook, h.Mode))
		}
		list := strings.Join(hooks, ", ")
		if list == "" {
			list = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", i.Name, i.Role, list)
	}
	tw.Flush()

	fmt.Fprintln(w, "\ncounters:")
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  HOOK\tVERDICT\tREASON\tPACKETS\tBYTES\t")
	for _, c := range r.Counters {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t\n", c.Hook, c.Verdict, c.Reason, c.Packets, c.Bytes)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ndeny events not sent: %d over the rate limit, %d ring full\n", r.EventsLost.RateLimited, r.EventsLost.RingFull)
}
