package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/dnsguard"
	"github.com/edgeward/edgeward/spool"
	"github.com/edgeward/edgeward/spool/forward"
	"github.com/edgeward/edgeward/test/demopolicy"
)

// nopLearner takes every learned destination and keeps none.
type nopLearner struct{}

func (nopLearner) Learn(context.Context, []dnsguard.Learned) error { return nil }

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// statusDaemonUnderTest is a daemon with a spool holding two records, a
// forwarder failing against a closed loopback port, and a DNS guard that
// restored one learned address, serving its control socket.
func statusDaemonUnderTest(t *testing.T) (socket string, restored netip.Addr) {
	t.Helper()
	dir := t.TempDir()
	_, cfg, err := demopolicy.Write(dir, demopolicy.Params{BPFFS: dir + "/bpffs", Dir: dir, Cgroup: dir + "/cgroup"})
	if err != nil {
		t.Fatal(err)
	}

	s, _, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Append(t.Context(), "line1", []byte(`{"t":1}`), []byte(`{"t":2}`)); err != nil {
		t.Fatal(err)
	}
	fwd := config.Forward{URL: "https://user:s3cret@" + closedPort(t) + "/ingest"}
	f, err := forward.New(s, forward.Options{URL: fwd.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	running.Go(func() { f.Run(ctx) })
	t.Cleanup(func() { cancel(); running.Wait(); s.Close() })
	for deadline := time.Now().Add(5 * time.Second); f.State().LastError == ""; {
		if time.Now().After(deadline) {
			t.Fatal("the forwarder did not fail against a closed port")
		}
		time.Sleep(10 * time.Millisecond)
	}

	g, err := dnsguard.New(cfg.DNS, dnsguard.Options{Learner: nopLearner{}})
	if err != nil {
		t.Fatal(err)
	}
	restored = netip.MustParseAddr("198.18.1.7")
	g.Restore([]dnsguard.Learned{{Addr: restored, Ports: cfg.DNS.Names[0].Ports, Expires: time.Hour, Name: cfg.DNS.Names[0].Match}})

	d := &daemon{
		log: slog.New(slog.DiscardHandler), started: time.Now(),
		spool: &spoolService{spool: s, dir: filepath.Join(dir, "spool"), forwarder: f, target: newForwardTarget(fwd)},
	}
	d.guard.Store(g)
	ln, err := listenControl(cfg.Paths.Socket)
	if err != nil {
		t.Fatal(err)
	}
	go d.serveControl(ln)
	t.Cleanup(func() { ln.Close() })
	return cfg.Paths.Socket, restored
}

// TestStatusEndpoint: GET /v1/status gives the spool's streams, the
// forwarder's failure with its target's password hidden, the DNS
// upstreams and the names the guard holds for the addresses asked.
func TestStatusEndpoint(t *testing.T) {
	socket, restored := statusDaemonUnderTest(t)

	a, err := fetchDaemonStatus(socket, []netip.Addr{restored, netip.MustParseAddr("198.18.1.8")})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Running || a.Spool == nil || a.Forwarder == nil || a.DNS == nil {
		t.Fatalf("status: %+v", a.statusDaemon)
	}
	st := a.Spool.Streams
	if len(st) != 1 || st[0].Stream != "line1" || st[0].BacklogRecords != 2 || st[0].Appended != 2 ||
		len(st[0].Dropped) != len(spool.DropReasons) {
		t.Errorf("streams: %+v", st)
	}
	f := a.Forwarder
	if f.Connected || f.LastError == "" || f.LastErrorTime == nil || f.Failures < 1 ||
		!strings.HasPrefix(f.Target, "https://user:xxxxx@127.0.0.1:") || strings.Contains(f.Target, "s3cret") {
		t.Errorf("forwarder: %+v", f)
	}
	wantUp := []statusUpstream{{Zones: []string{"partner.test"}, Server: "10.20.0.2:53"}}
	if diff := cmp.Diff(wantUp, a.DNS.Upstreams); diff != "" {
		t.Errorf("dns upstreams (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{restored.String(): ""}, a.LearnedNames); diff != "" {
		t.Errorf("learned names (-want +got):\n%s", diff)
	}
}

// TestStatusEndpointRefuses: an address that does not parse, too many
// addresses, or no daemon on the socket are errors that say so.
func TestStatusEndpointRefuses(t *testing.T) {
	socket, _ := statusDaemonUnderTest(t)
	if _, err := fetchDaemonStatus(socket, make([]netip.Addr, maxStatusAddrs+1)); err == nil || !strings.Contains(err.Error(), "400 Bad Request: 101 addresses asked, at most 100") {
		t.Errorf("%d addresses: %v, want a 400", maxStatusAddrs+1, err)
	}
	// netip.Addr{} prints as "invalid IP", which does not parse.
	if _, err := fetchDaemonStatus(socket, []netip.Addr{{}}); err == nil || !strings.Contains(err.Error(), `400 Bad Request: addr: ParseAddr("invalid IP")`) {
		t.Errorf("invalid address: %v, want a 400", err)
	}

	missing := filepath.Join(t.TempDir(), "none.sock")
	_, err := fetchDaemonStatus(missing, nil)
	want := fmt.Sprintf("no daemon answers on %s: connect: no such file or directory", missing)
	if err == nil || err.Error() != want {
		t.Errorf("no daemon: %v, want %q", err, want)
	}
}
