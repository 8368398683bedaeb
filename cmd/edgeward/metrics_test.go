package main

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/internal/metrictest"
	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/netwatch"
)

// collectFunc turns one part of the collector into a prometheus.Collector,
// so that a test can gather it without kernel maps.
type collectFunc func(chan<- prometheus.Metric)

func (f collectFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// cellName renders a counter cell as hook/verdict/reason.
func cellName(k loader.Counter) string {
	return fmt.Sprintf("%s/%s/%s", k.Hook, k.Verdict, k.Reason)
}

// TestCounterGrid: every packet reason of bpf/reasons.h is in the grid
// for every packet hook, allowing reasons with pass only, denying reasons
// and unknown (a packet no step decided on) with drop and audit only;
// the socket guard's reasons are there for the socket hook alone, with
// drop and audit.
func TestCounterGrid(t *testing.T) {
	grid, err := counterGrid()
	if err != nil {
		t.Fatal(err)
	}
	reasons, err := loader.Reasons()
	if err != nil {
		t.Fatal(err)
	}
	cells := map[string]bool{}
	for _, k := range grid {
		cells[cellName(k)] = true
	}
	if len(cells) != len(grid) {
		t.Errorf("grid has %d cells, %d distinct", len(grid), len(cells))
	}

	hooks := []loader.Hook{loader.HookTCEgress, loader.HookXDPLAN, loader.HookUplinkIngress, loader.HookSocket}
	verdicts := []loader.Verdict{loader.VerdictPass, loader.VerdictDrop, loader.VerdictAudit}
	sockets := 0
	for _, h := range hooks {
		for _, r := range reasons {
			for _, v := range verdicts {
				k := loader.Counter{Hook: h, Verdict: v, Reason: r}
				passes := r != loader.ReasonUnknown && r.Allows()
				want := passes == (v == loader.VerdictPass) && r.Socket() == (h == loader.HookSocket)
				if want && h == loader.HookSocket {
					sockets++
				}
				if cells[cellName(k)] != want {
					t.Errorf("cell %s in grid: %v, want %v", cellName(k), cells[cellName(k)], want)
				}
			}
		}
	}
	if sockets != 4 {
		t.Errorf("%d socket cells in the grid, want 4 (drop and audit of qdisc_bypass and af_xdp)", sockets)
	}
}

// TestWithZeroCells: counted cells keep their values, missing grid cells
// come at zero, and a counted cell outside the grid is kept.
func TestWithZeroCells(t *testing.T) {
	grid := []loader.Counter{
		{Hook: loader.HookTCEgress, Verdict: loader.VerdictDrop, Reason: 32},
		{Hook: loader.HookTCEgress, Verdict: loader.VerdictPass, Reason: 1},
	}
	counters := []loader.Counter{
		{Hook: loader.HookTCEgress, Verdict: loader.VerdictDrop, Reason: 32, Packets: 7, Bytes: 700},
		{Hook: loader.HookXDPLAN, Verdict: loader.VerdictPass, Reason: loader.ReasonUnknown, Packets: 1, Bytes: 60},
	}

	got := map[string][2]uint64{}
	for _, k := range withZeroCells(counters, grid) {
		if _, dup := got[cellName(k)]; dup {
			t.Errorf("cell %s twice", cellName(k))
		}
		got[cellName(k)] = [2]uint64{k.Packets, k.Bytes}
	}
	want := map[string][2]uint64{
		"tc_egress/drop/no_rule":  {7, 700},
		"tc_egress/pass/endpoint": {0, 0},
		"xdp_lan/pass/unknown":    {1, 60},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cells (-want +got):\n%s", diff)
	}
}

// TestCollectInterfaces: interfaces are counted by role, attachment and
// link state, every role at zero where there is none.
func TestCollectInterfaces(t *testing.T) {
	e := &enforcer{links: map[int]linkState{
		2: {link: netwatch.Link{Index: 2, Name: "wan0", Up: true}, role: config.RoleUplink, attached: []loader.Attached{{}}},
		3: {link: netwatch.Link{Index: 3, Name: "wan1"}, role: config.RoleUplink, attached: []loader.Attached{{}}},
		4: {link: netwatch.Link{Index: 4, Name: "lan0", Up: true}, role: config.RoleLAN, failed: true},
		5: {link: netwatch.Link{Index: 5, Name: "wg0"}, role: config.RoleVPN},
	}, attachErrors: 1}
	c := newCollector(&daemon{enforcer: e})

	got := metrictest.Gather(t, collectFunc(c.collectInterfaces))
	want := map[string]float64{"edgeward_attach_errors_total{}": 1}
	for _, role := range roles {
		for _, enforced := range []string{"true", "false"} {
			want[fmt.Sprintf("edgeward_interfaces{enforced=%s,role=%s}", enforced, role)] = 0
		}
		want[fmt.Sprintf("edgeward_interfaces_up{role=%s}", role)] = 0
	}
	want["edgeward_interfaces{enforced=true,role=uplink}"] = 2
	want["edgeward_interfaces{enforced=false,role=lan}"] = 1
	want["edgeward_interfaces{enforced=false,role=vpn}"] = 1
	want["edgeward_interfaces_up{role=uplink}"] = 1
	want["edgeward_interfaces_up{role=lan}"] = 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// TestCollectPolicy: the policy's entries are reported in total and per
// family, next to the per-family capacity.
func TestCollectPolicy(t *testing.T) {
	c := newCollector(&daemon{})
	p := loader.ActivePolicy{Generation: 4, Audit: true, Entries: 5, Entries4: 3, Entries6: 2}

	got := metrictest.Gather(t, collectFunc(func(ch chan<- prometheus.Metric) { c.collectPolicy(ch, p) }))
	want := map[string]float64{
		"edgeward_policy_entries{}":                   5,
		"edgeward_policy_family_entries{family=ipv4}": 3,
		"edgeward_policy_family_entries{family=ipv6}": 2,
		"edgeward_policy_capacity{}":                  loader.MaxRules,
		"edgeward_policy_generation{}":                4,
		"edgeward_audit_mode{}":                       1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
