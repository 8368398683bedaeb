package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/dnsguard"
	"github.com/edgeward/edgeward/spool"
)

// printStatus writes the report as sections of tables; now is the time
// the relative times ("12s ago") count from.
func printStatus(w io.Writer, cfg *config.Config, r *statusReport, now time.Time) {
	if !r.Loaded {
		fmt.Fprintf(w, "not loaded: nothing pinned under %s\n", cfg.Paths.BPFFS)
	} else {
		printKernel(w, r)
	}
	if r.DNSRules != "" {
		fmt.Fprintf(w, "\ntransparent dns rules: %s (queue %d)\n", r.DNSRules, cfg.DNS.Queue.Number)
	}
	printDaemon(w, r.Daemon, now)
}

// printKernel writes what the pins and netlink say.
func printKernel(w io.Writer, r *statusReport) {
	if r.Generation == 0 {
		fmt.Fprintln(w, "policy:     none applied (uplinks drop everything but link needs)")
	} else {
		fmt.Fprintf(w, "mode:       %s\n", r.Mode)
		fmt.Fprintf(w, "generation: %d\n", r.Generation)
		fmt.Fprintf(w, "policy:     %d entries (at most %d per address family)\n", r.Entries, r.Capacity)
	}
	printMaps(w, r.Maps)
	printInterfaces(w, r.Interfaces)
	printTunnels(w, r.Tunnels)
	printCounters(w, r.Counters)
	printGuard(w, r.SocketGuard)
	fmt.Fprintf(w, "\ndeny events not sent: %d over the rate limit, %d ring full\n", r.EventsLost.RateLimited, r.EventsLost.RingFull)
	printLearned(w, r.Learned, r.Daemon.Running)
}

// newTable starts a table whose columns are two spaces apart.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
}

func printMaps(w io.Writer, maps []statusMap) {
	fmt.Fprintln(w, "\nmaps:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  MAP\tENTRIES\tCAPACITY\tUSED")
	for _, m := range maps {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", m.Map, m.Entries, m.Capacity, percent(m.Entries, m.Capacity))
	}
	tw.Flush()
}

// percent is part of whole with one decimal, "-" for no whole.
func percent(part, whole int) string {
	if whole <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

func printInterfaces(w io.Writer, ifaces []statusIface) {
	fmt.Fprintln(w, "\ninterfaces:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  NAME\tROLE\tSTATE\tHOOKS")
	for _, i := range ifaces {
		var hooks []string
		for _, h := range i.Hooks {
			hooks = append(hooks, fmt.Sprintf("%s (%s)", h.Hook, h.Mode))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", i.Name, i.Role, upDown(i.Up), orDash(strings.Join(hooks, ", ")))
	}
	tw.Flush()
}

func printTunnels(w io.Writer, tunnels []statusTunnel) {
	fmt.Fprintln(w, "\ntunnels:")
	if len(tunnels) == 0 {
		fmt.Fprintln(w, "  none: no interface matches interfaces.vpn")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "  NAME\tSTATE\tOPERSTATE")
	for _, t := range tunnels {
		state := upDown(t.Up)
		if !t.Present {
			state = "missing"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Name, state, orDash(t.OperState))
	}
	tw.Flush()
}

func printCounters(w io.Writer, counters []statusCounter) {
	fmt.Fprintln(w, "\ncounters:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  HOOK\tVERDICT\tREASON\tPACKETS\tBYTES")
	for _, c := range counters {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\n", c.Hook, c.Verdict, c.Reason, c.Packets, c.Bytes)
	}
	tw.Flush()
}

// printGuard writes where the socket guard is attached and what it
// refused.
func printGuard(w io.Writer, g statusGuard) {
	switch {
	case g.Attached:
		fmt.Fprintf(w, "\nsocket guard: %s on cgroup %s\n", strings.Join(g.Hooks, ", "), g.Cgroup)
	case g.Cgroup != "":
		fmt.Fprintf(w, "\nsocket guard: off for cgroup %s: %s\n", g.Cgroup, g.Problem)
	default:
		fmt.Fprintf(w, "\nsocket guard: off: %s\n", g.Problem)
	}
	if len(g.Denied) == 0 {
		fmt.Fprintln(w, "  nothing refused")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "  VERDICT\tREASON\tCALLS")
	for _, d := range g.Denied {
		fmt.Fprintf(tw, "  %s\t%s\t%d\n", d.Verdict, d.Reason, d.Calls)
	}
	tw.Flush()
}

// printLearned writes the learned destinations; the query names come
// only from a running daemon, which withNames says.
func printLearned(w io.Writer, l statusLearned, withNames bool) {
	fmt.Fprintf(w, "\nlearned destinations: %d live, room for %d\n", l.Live, l.Capacity)
	if l.Live == 0 {
		return
	}
	for _, p := range l.ByPattern {
		fmt.Fprintf(w, "  %s: %d\n", p.Pattern, p.Addresses)
	}
	fmt.Fprintf(w, "  next %d to expire:\n", len(l.Next))
	tw := newTable(w)
	fmt.Fprintln(tw, "    ADDRESS\tPORTS\tEXPIRES IN\tPATTERN\tNAME")
	for _, d := range l.Next {
		in := time.Duration(d.ExpiresIn * float64(time.Second))
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\n", d.Addr, strings.Join(d.Ports, ","), roundDuration(in), d.Pattern, orDash(d.Name))
	}
	tw.Flush()
	if !withNames {
		fmt.Fprintln(w, "  (query names come from the daemon, which is not running)")
	}
}

// printDaemon writes the daemon part, or why it is missing.
func printDaemon(w io.Writer, d statusDaemon, now time.Time) {
	if !d.Running {
		fmt.Fprintf(w, "\ndaemon: not running: %s\n", d.Error)
		fmt.Fprintln(w, "  DNS guard, spool and forwarder state unavailable; the pinned policy stays enforced.")
		fmt.Fprintln(w, "  Start the daemon with edgeward run, or pass -c with the config file it runs with.")
		return
	}
	fmt.Fprintf(w, "\ndaemon: running, pid %d, version %s, started %s\n", d.PID, d.Version, ago(now, d.Started))
	printUpstreams(w, d.DNS, now)
	printSpool(w, d.Spool)
	printForwarder(w, d.Forwarder, now)
}

func printUpstreams(w io.Writer, dns *statusDNS, now time.Time) {
	if dns == nil {
		fmt.Fprintln(w, "\ndns guard: not configured (dns.listen is empty)")
		return
	}
	if t := dns.Transparent; t != nil {
		fmt.Fprintf(w, "\ntransparent dns: queue %d, %d waiting; dropped unjudged: %d queue full, %d receive overrun, %d unparsable; rules restored %d times\n",
			t.Queue, t.Waiting, t.QueueFull, t.Overruns, t.Unparsable, t.RulesRestored)
		for _, kind := range []string{dnsguard.KindQuery, dnsguard.KindAnswer} {
			fmt.Fprintf(w, "  %ss: %s\n", kind, countsLine(t.Intercepted[kind]))
		}
	}
	fmt.Fprintln(w, "\ndns upstreams:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  SERVER\tZONES\tANSWERS\tFAILURES\tLAST ANSWER\tLAST FAILURE\tLAST ERROR")
	for _, u := range dns.Upstreams {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\t%s\t%s\n", u.Server, strings.Join(u.Zones, ","),
			u.Answers, u.Failures, ago(now, u.LastAnswer), ago(now, u.LastFailure), orDash(u.LastError))
	}
	tw.Flush()
}

func printSpool(w io.Writer, s *statusSpool) {
	if s == nil {
		fmt.Fprintln(w, "\nspool: not configured (spool.listen is empty)")
		return
	}
	fmt.Fprintf(w, "\nspool: %s, %d bytes on disk (counts since the daemon started)\n", s.Dir, s.DiskBytes)
	if len(s.Streams) == 0 {
		fmt.Fprintln(w, "  no streams yet")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "  STREAM\tBACKLOG\tBYTES\tOLDEST\tAPPENDED\tFORWARDED\tDROPPED\tDEAD LETTER")
	for _, st := range s.Streams {
		dropped, dead := droppedCounts(st.Dropped)
		oldest := "-"
		if st.BacklogRecords > 0 {
			oldest = roundDuration(time.Duration(st.OldestAgeSeconds * float64(time.Second)))
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\n", st.Stream, st.BacklogRecords, st.BacklogBytes,
			oldest, st.Appended, st.Forwarded, dropped, dead)
	}
	tw.Flush()
}

// droppedCounts splits a stream's drops into losses (every reason but
// dead_letter) and records moved to the dead-letter stream.
func droppedCounts(byReason map[string]uint64) (lost, dead uint64) {
	for reason, n := range byReason {
		if reason == string(spool.DropDeadLetter) {
			dead += n
		} else {
			lost += n
		}
	}
	return lost, dead
}

func printForwarder(w io.Writer, f *statusForwarder, now time.Time) {
	if f == nil {
		fmt.Fprintln(w, "\nforwarder: not configured (spool.forward is not set)")
		return
	}
	fmt.Fprintf(w, "\nforwarder: %s\n", f.Target)
	if f.Proxy != "" {
		fmt.Fprintf(w, "  proxy:         %s\n", f.Proxy)
	}
	state := "disconnected"
	if f.Connected {
		state = "connected"
	}
	fmt.Fprintf(w, "  state:         %s since %s\n", state, ago(now, f.Since))
	fmt.Fprintf(w, "  last success:  %s\n", ago(now, f.LastSuccess))
	if f.LastError != "" {
		fmt.Fprintf(w, "  last error:    %s: %s\n", ago(now, f.LastErrorTime), f.LastError)
	}
	if f.NextTry != nil {
		fmt.Fprintf(w, "  next try:      in %s (after %d failures)\n", roundDuration(f.NextTry.Sub(now)), f.Failures)
	}
	fmt.Fprintf(w, "  dead-lettered: %d\n", f.DeadLettered)
}

// ago says how long before now t was, "never" for nil.
func ago(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return roundDuration(now.Sub(*t)) + " ago"
}

// roundDuration shows d to the second, or to the minute from an hour on;
// a negative d (clocks of two processes) shows as 0s.
func roundDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d >= time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return d.Round(time.Second).String()
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// countsLine lists the non-zero counts as "result n, ...", sorted, or "none".
func countsLine(counts map[string]uint64) string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(counts)) {
		if counts[r] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r, counts[r]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
