package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgeward/edgeward/test/demopolicy"
	sb "github.com/edgeward/edgeward/test/sandbox"
)

// statusJSON is the part of `edgeward status -json` these tests read,
// with the field names the README documents.
type statusJSON struct {
	Loaded     bool   `json:"loaded"`
	Mode       string `json:"mode"`
	Generation uint32 `json:"generation"`
	Maps       []struct {
		Map      string `json:"map"`
		Entries  int    `json:"entries"`
		Capacity int    `json:"capacity"`
	} `json:"maps"`
	Tunnels []struct {
		Name    string `json:"name"`
		Present bool   `json:"present"`
		Up      bool   `json:"up"`
	} `json:"tunnels"`
	Learned struct {
		Live int `json:"live"`
		Next []struct {
			Addr      string   `json:"addr"`
			Ports     []string `json:"ports"`
			Pattern   string   `json:"pattern"`
			Name      string   `json:"name"`
			ExpiresIn float64  `json:"expires_in_seconds"`
		} `json:"next_expiries"`
	} `json:"learned"`
	Daemon struct {
		Running bool   `json:"running"`
		Error   string `json:"error"`
		Spool   *struct {
			Streams []struct {
				Stream         string            `json:"stream"`
				BacklogRecords int64             `json:"backlog_records"`
				Appended       uint64            `json:"appended"`
				Forwarded      uint64            `json:"forwarded"`
				Dropped        map[string]uint64 `json:"dropped"`
			} `json:"streams"`
		} `json:"spool"`
		Forwarder *struct {
			Target      string     `json:"target"`
			Connected   bool       `json:"connected"`
			LastSuccess *time.Time `json:"last_success"`
		} `json:"forwarder"`
		DNS *struct {
			Upstreams []struct {
				Server     string     `json:"server"`
				Answers    uint64     `json:"answers"`
				LastAnswer *time.Time `json:"last_answer"`
			} `json:"upstreams"`
		} `json:"dns"`
	} `json:"daemon"`
}

// status runs `edgeward status` with flag (-json or --json) and returns
// the report and the exit status.
func (g *gateway) status(flag string) (statusJSON, int) {
	g.t.Helper()
	out, err := g.cli("status", "-c", g.cfgPath, flag)
	var st statusJSON
	if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
		g.t.Fatalf("status %s: %v, output is not JSON: %v\n%s", flag, err, jerr, out)
	}
	return st, exitCode(err)
}

// TestStatusDaemonAndKernel: with the daemon running, after the OT host
// resolved an allowed name and posted a spool record that the forwarder
// delivered through the tunnel (status is polled until it shows the
// record forwarded), status shows the learned entry with its
// name and remaining lifetime, the stream, the forwarder connected, the
// DNS upstream's answer, the tunnel up and the maps' use. After a
// SIGKILL it still shows the kernel part, says the daemon part is
// unavailable and exits with 3; a tunnel taken down shows as down.
func TestStatusDaemonAndKernel(t *testing.T) {
	g := newGateway(t, demopolicy.Params{})
	broker := startWithBroker(t, g, demopolicy.Params{})

	resp, err := g.sb.Resolve(sb.OT, "h5.partner.test")
	if err != nil || sb.FirstA(resp) != "198.18.1.5" {
		t.Fatalf("resolve h5.partner.test: %v %v", err, resp)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := sb.PostRecord(ctx, g.sb.HTTPClient(sb.OT, 5*time.Second), spoolAPI, "status", `{"t":1}`); err != nil {
		t.Fatal(err)
	}
	var st statusJSON
	var code int
	waitUntil(t, 20*time.Second, "the record acknowledged upstream", func() bool {
		st, code = g.status("-json")
		return st.Daemon.Spool != nil && len(st.Daemon.Spool.Streams) == 1 && st.Daemon.Spool.Streams[0].Forwarded == 1
	})
	if n := len(broker.Inbox.Deliveries()); n != 1 {
		t.Errorf("%d deliveries at the broker, want 1", n)
	}
	if code != 0 {
		t.Errorf("status with the daemon running exited %d, want 0", code)
	}
	checkKernelStatus(t, g, st)
	checkDaemonStatus(t, st)

	g.kill()
	st, code = g.status("--json")
	if code != 3 {
		t.Errorf("status without the daemon exited %d, want 3", code)
	}
	checkKernelStatus(t, g, st)
	if st.Daemon.Running || !strings.Contains(st.Daemon.Error, "no daemon answers") || st.Daemon.Spool != nil {
		t.Errorf("daemon part without a daemon: %+v", st.Daemon)
	}
	out, _ := g.cli("status", "-c", g.cfgPath)
	if err := contains(out, "daemon: not running", "198.18.1.5", "*.partner.test", "query names come from the daemon"); err != nil {
		t.Errorf("status text without the daemon: %v\n%s", err, out)
	}

	if err := g.sb.SetTunnelDown(true); err != nil {
		t.Fatal(err)
	}
	st, _ = g.status("-json")
	if tunnelUp(st, g) {
		t.Errorf("tunnel shown up after it was set down: %+v", st.Tunnels)
	}
}

// checkKernelStatus checks what status reads from the pins and netlink:
// mode, generation, maps against capacity, the learned entry and the
// tunnel.
func checkKernelStatus(t *testing.T, g *gateway, st statusJSON) {
	t.Helper()
	if !st.Loaded || st.Mode != "enforce" || st.Generation != 1 {
		t.Errorf("loaded %v, mode %q, generation %d; want enforce, generation 1", st.Loaded, st.Mode, st.Generation)
	}
	used := map[string]int{}
	for _, m := range st.Maps {
		if m.Capacity <= 0 || m.Entries > m.Capacity {
			t.Errorf("map %s: %d of %d entries", m.Map, m.Entries, m.Capacity)
		}
		used[m.Map] = m.Entries
	}
	if used["ew_tables/ipv4"] == 0 || used["ew_learned_dests"] < 1 || used["ew_flows"] < 1 {
		t.Errorf("map use %v: want IPv4 policy entries, a learned destination and the tunnel's flow", used)
	}

	if st.Learned.Live < 1 || len(st.Learned.Next) < 1 {
		t.Fatalf("learned: %+v, want the entry for h5.partner.test", st.Learned)
	}
	d := st.Learned.Next[0]
	if d.Addr != "198.18.1.5" || d.Pattern != "*.partner.test" || strings.Join(d.Ports, ",") != "tcp/8883" ||
		d.ExpiresIn <= 0 || d.ExpiresIn > 60 {
		t.Errorf("next learned entry %+v, want 198.18.1.5 for *.partner.test, tcp/8883, expiring within 60 s", d)
	}
	wantName := "h5.partner.test"
	if !st.Daemon.Running {
		wantName = "" // only the daemon knows query names
	}
	if d.Name != wantName {
		t.Errorf("learned entry's name %q, want %q", d.Name, wantName)
	}
	if !tunnelUp(st, g) {
		t.Errorf("tunnel not shown up: %+v", st.Tunnels)
	}
}

// checkDaemonStatus checks the daemon part: the stream, the forwarder
// and the DNS upstream.
func checkDaemonStatus(t *testing.T, st statusJSON) {
	t.Helper()
	d := st.Daemon
	if !d.Running || d.Spool == nil || d.Forwarder == nil || d.DNS == nil {
		t.Fatalf("daemon part: %+v", d)
	}
	found := false
	for _, s := range d.Spool.Streams {
		if s.Stream == "status" {
			found = true
			if s.Appended != 1 || s.Forwarded != 1 || s.BacklogRecords != 0 || len(s.Dropped) == 0 {
				t.Errorf("stream: %+v, want 1 appended and forwarded, no backlog, drops by reason", s)
			}
		}
	}
	if !found {
		t.Errorf("no stream \"status\" in %+v", d.Spool.Streams)
	}
	if f := d.Forwarder; !strings.HasPrefix(f.Target, "mqtts://") || !f.Connected || f.LastSuccess == nil {
		t.Errorf("forwarder: %+v, want connected to mqtts with a success", f)
	}
	if len(d.DNS.Upstreams) != 1 || d.DNS.Upstreams[0].Server != sb.Addr(sb.CloudResolver4, 53) ||
		d.DNS.Upstreams[0].Answers < 1 || d.DNS.Upstreams[0].LastAnswer == nil {
		t.Errorf("dns upstreams: %+v, want the cloud resolver with an answer", d.DNS.Upstreams)
	}
}

// tunnelUp reports whether status shows the sandbox's WireGuard
// interface present and up.
func tunnelUp(st statusJSON, g *gateway) bool {
	iface, _ := g.sb.WireGuard()
	for _, tn := range st.Tunnels {
		if tn.Name == iface {
			return tn.Present && tn.Up
		}
	}
	return false
}
