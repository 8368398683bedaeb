package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/test/demopolicy"
)

func learnedDest(addr string, name uint16, left time.Duration) loader.LearnedDest {
	return loader.LearnedDest{
		Addr: netip.MustParseAddr(addr), Name: name, Lifetime: left,
		Ports: []config.PortRange{{Proto: config.ProtoTCP, First: 8883, Last: 8883}, {Proto: config.ProtoUDP, First: 5000, Last: 5010}},
	}
}

// TestStatusSummarizeLearned: learned destinations are counted per pattern and
// the next to expire listed soonest first, ties by address, at most the
// number asked; an index the config file has no entry for shows as #N.
func TestStatusSummarizeLearned(t *testing.T) {
	patterns := []string{"*.partner.test", "api.example.com"}
	dests := []loader.LearnedDest{
		learnedDest("198.18.1.9", 0, 50*time.Second),
		learnedDest("2001:db8::1", 1, 10*time.Second),
		learnedDest("198.18.1.2", 0, 50*time.Second),
		learnedDest("198.18.1.3", 7, 90*time.Minute),
	}
	next := func(addr, pattern string, secs float64) statusLearnedDest {
		return statusLearnedDest{Addr: addr, Ports: []string{"tcp/8883", "udp/5000-5010"}, Pattern: pattern, ExpiresIn: secs}
	}
	byPattern := []statusPattern{{"#7", 1}, {"*.partner.test", 2}, {"api.example.com", 1}}

	tests := []struct {
		name string
		next int
		want []statusLearnedDest
	}{
		{"none asked", 0, []statusLearnedDest{}},
		{"three of four", 3, []statusLearnedDest{
			next("2001:db8::1", "api.example.com", 10),
			next("198.18.1.2", "*.partner.test", 50),
			next("198.18.1.9", "*.partner.test", 50),
		}},
		{"more than there are", 10, []statusLearnedDest{
			next("2001:db8::1", "api.example.com", 10),
			next("198.18.1.2", "*.partner.test", 50),
			next("198.18.1.9", "*.partner.test", 50),
			next("198.18.1.3", "#7", 5400),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarizeLearned(dests, patterns, tt.next, 65536)
			want := statusLearned{Live: 4, Capacity: 65536, ByPattern: byPattern, Next: tt.want}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStatusRoundDuration: seconds below an hour, minutes from an hour on, and
// never a negative time.
func TestStatusRoundDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-3 * time.Second, "0s"},
		{0, "0s"},
		{1499 * time.Millisecond, "1s"},
		{59*time.Minute + 59*time.Second, "59m59s"},
		{time.Hour + 29*time.Second, "1h0m"},
		{49*time.Hour + 12*time.Minute + 40*time.Second, "49h13m"},
	}
	for _, tt := range tests {
		if got := roundDuration(tt.in); got != tt.want {
			t.Errorf("roundDuration(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	past := now.Add(-90 * time.Second)
	if got := []string{ago(now, nil), ago(now, &past)}; !cmp.Equal(got, []string{"never", "1m30s ago"}) {
		t.Errorf("ago(nil), ago(90 s before) = %q", got)
	}
}

// TestStatusExitStatus: 0 with the kernel and the daemon, 3 with the
// kernel only, 1 with nothing loaded.
func TestStatusExitStatus(t *testing.T) {
	tests := []struct {
		loaded, running bool
		want            int
	}{
		{true, true, exitOK},
		{true, false, exitNoDaemon},
		{false, false, exitFailure},
	}
	for _, tt := range tests {
		r := statusReport{Loaded: tt.loaded, Daemon: statusDaemon{Running: tt.running}}
		if got := r.exitStatus(); got != tt.want {
			t.Errorf("loaded %v, daemon running %v: exit %d, want %d", tt.loaded, tt.running, got, tt.want)
		}
	}
}

// TestStatusRedactURL: a password in the forwarder's URL or proxy never reaches
// status output, nor does a URL that does not parse.
func TestStatusRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"mqtts://broker.example:8883", "mqtts://broker.example:8883"},
		{"https://user:s3cret@ingest.example/v1", "https://user:xxxxx@ingest.example/v1"},
		{"http://proxy:pa%zz@192.0.2.10:3128", "(unparsable URL)"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestStatusPrintDaemon: the text form names the forwarder's last error
// and next try, splits drops into losses and dead letters, and says which
// parts the daemon runs without.
func TestStatusPrintDaemon(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	d := statusDaemon{
		Running: true, PID: 42, Version: "v1.2.3", Started: at(-2 * time.Hour),
		Spool: &statusSpool{Dir: "/var/lib/edgeward/spool", DiskBytes: 4096, Streams: []statusStream{{
			Stream: "line1", BacklogRecords: 7, BacklogBytes: 700, OldestAgeSeconds: 125,
			Appended: 10, Forwarded: 3, Dropped: map[string]uint64{"max_age": 2, "full": 1, "dead_letter": 4},
		}}},
		Forwarder: &statusForwarder{
			Target: "mqtts://broker:8883", Since: at(-30 * time.Second), LastSuccess: at(-time.Minute),
			LastError: "dial tcp 10.20.8.15:8883: i/o timeout", LastErrorTime: at(-5 * time.Second),
			Failures: 3, NextTry: at(4 * time.Second), DeadLettered: 4,
		},
	}
	var buf bytes.Buffer
	printDaemon(&buf, d, now)
	out := buf.String()
	for _, want := range []string{
		"daemon: running, pid 42, version v1.2.3, started 2h0m ago",
		"dns guard: not configured",
		"line1   7        700    2m5s    10        3          3        4",
		"state:         disconnected since 30s ago",
		"last success:  1m0s ago",
		"last error:    5s ago: dial tcp 10.20.8.15:8883: i/o timeout",
		"next try:      in 4s (after 3 failures)",
		"dead-lettered: 4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}

	buf.Reset()
	printDaemon(&buf, statusDaemon{Error: "no daemon answers on /run/edgeward.sock: connect: connection refused"}, now)
	if !strings.Contains(buf.String(), "daemon: not running: no daemon answers on /run/edgeward.sock") {
		t.Errorf("daemon down:\n%s", buf.String())
	}
}

// TestStatusWithoutPinsOrDaemon runs the command on a config whose pin
// directory holds nothing and whose socket nobody listens on: -json and
// --json both print JSON that says so, the text says so, and the exit
// status is 1; a negative -learned is a usage error. It needs no root.
func TestStatusWithoutPinsOrDaemon(t *testing.T) {
	dir := t.TempDir()
	path, cfg, err := demopolicy.Write(dir, demopolicy.Params{BPFFS: dir + "/bpffs/edgeward", Dir: dir, Cgroup: dir + "/cgroup"})
	if err != nil {
		t.Fatal(err)
	}

	for _, flag := range []string{"-json", "--json"} {
		var stdout, stderr bytes.Buffer
		code := cmdStatus([]string{"-c", path, flag}, &stdout, &stderr)
		var got statusReport
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatalf("%s: not JSON (%v): %s%s", flag, err, stdout.String(), stderr.String())
		}
		if code != exitFailure || got.Loaded || got.Daemon.Running || !strings.Contains(got.Daemon.Error, cfg.Paths.Socket) {
			t.Errorf("%s: exit %d, loaded %v, daemon %+v", flag, code, got.Loaded, got.Daemon)
		}
	}

	var stdout, stderr bytes.Buffer
	if code := cmdStatus([]string{"-c", path, "-learned", "-1"}, &stdout, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "-learned -1: want 0 or more") {
		t.Errorf("-learned -1: exit %d, want 2 with a reason:\n%s", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := cmdStatus([]string{"-c", path}, &stdout, &stderr); code != exitFailure {
		t.Errorf("text: exit %d, want 1", code)
	}
	for _, want := range []string{"not loaded: nothing pinned under " + cfg.Paths.BPFFS, "daemon: not running"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text: missing %q in:\n%s", want, stdout.String())
		}
	}
}
