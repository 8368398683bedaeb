package intercept

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/edgeward/edgeward/dnsguard"
	"github.com/edgeward/edgeward/internal/testenv"
)

// pair is two fresh network namespaces joined by a veth: the calling
// thread sits in client (10.77.0.1); server (10.77.0.2) holds a DNS
// server that answers every query with 10.20.0.1 and counts what it got.
type pair struct {
	client, server netns.NsHandle

	mu   sync.Mutex
	seen []string // query names the server received
}

const testQueue = 4053

func newPair(t *testing.T) *pair {
	t.Helper()
	testenv.RequireRoot(t)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{}
	if p.server, err = netns.New(); err != nil {
		t.Fatal(err)
	}
	if p.client, err = netns.New(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		netns.Set(orig)
		p.client.Close()
		p.server.Close()
		orig.Close()
		runtime.UnlockOSThread()
		requireNoLeak(t)
	})
	requireLeft(t, orig)

	p.link(t)
	p.serve(t)
	return p
}

// requireLeft stops the test unless the thread has left orig, the
// namespace the test started in: the rules must never reach the machine's.
func requireLeft(t *testing.T, orig netns.NsHandle) {
	t.Helper()
	cur, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if cur.Equal(orig) {
		t.Fatal("still in the network namespace the test started in")
	}
}

// requireNoLeak fails when rules of ours show in the namespace the test
// started in: a goroutine ran iptables on the wrong thread.
func requireNoLeak(t *testing.T) {
	t.Helper()
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if rules := listRules(t, cmd); strings.Contains(rules, "EDGEWARD") {
			t.Errorf("%s: rules leaked into the test's own namespace:\n%s", cmd, rules)
		}
	}
}

// link joins the namespaces, from the client's side.
func (p *pair) link(t *testing.T) {
	t.Helper()
	lo, _ := netlink.LinkByName("lo")
	must(t, netlink.LinkSetUp(lo))
	must(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ewq0"}, PeerName: "ewq0p"}))
	peer, err := netlink.LinkByName("ewq0p")
	must(t, err)
	must(t, netlink.LinkSetNsFd(peer, int(p.server)))
	addr(t, "ewq0", "10.77.0.1/24")

	must(t, netns.Set(p.server))
	defer netns.Set(p.client)
	lo, _ = netlink.LinkByName("lo")
	must(t, netlink.LinkSetUp(lo))
	addr(t, "ewq0p", "10.77.0.2/24")
}

func addr(t *testing.T, name, cidr string) {
	t.Helper()
	l, err := netlink.LinkByName(name)
	must(t, err)
	a, err := netlink.ParseAddr(cidr)
	must(t, err)
	must(t, netlink.AddrAdd(l, a))
	must(t, netlink.LinkSetUp(l))
}

// serve starts the server's DNS server; its socket stays in the server's
// namespace.
func (p *pair) serve(t *testing.T) {
	t.Helper()
	must(t, netns.Set(p.server))
	pc, err := net.ListenPacket("udp", "10.77.0.2:53")
	netns.Set(p.client)
	must(t, err)

	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		p.mu.Lock()
		p.seen = append(p.seen, q.Question[0].Name)
		p.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(q)
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 10.20.0.1")
		m.Answer = []dns.RR{rr}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
}

func (p *pair) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// ask sends a query from the client's namespace and waits up to timeout.
func ask(name string, timeout time.Duration) error {
	c := &dns.Client{Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	_, _, err := c.Exchange(m, "10.77.0.2:53")
	return err
}

// allowOK is a judge that lets through what asks for ok.test and records
// the kinds it saw.
type allowOK struct {
	mu    sync.Mutex
	kinds []string
}

func (a *allowOK) judge(_ context.Context, p dnsguard.Intercepted) dnsguard.InterceptVerdict {
	m := new(dns.Msg)
	if err := m.Unpack(p.Payload); err != nil || len(m.Question) != 1 {
		return dnsguard.InterceptVerdict{Result: "malformed"}
	}
	kind := dnsguard.KindQuery
	if m.Response {
		kind = dnsguard.KindAnswer
	}
	a.mu.Lock()
	a.kinds = append(a.kinds, kind)
	a.mu.Unlock()
	return dnsguard.InterceptVerdict{Accept: m.Question[0].Name == "ok.test.", Kind: kind}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestQueueJudgesQueriesAndAnswers: with the rules in place, a query and
// its answer each pass only when the judge accepts them; an unanswered
// query never reaches the server.
func TestQueueJudgesQueriesAndAnswers(t *testing.T) {
	p := newPair(t)
	must(t, Install(testQueue))
	judge := &allowOK{}
	q, err := Open(testQueue, 64, judge.judge, nil, slog.Default())
	must(t, err)
	defer q.Close()

	if err := ask("ok.test.", 2*time.Second); err != nil {
		t.Errorf("allowed query: %v", err)
	}
	if err := ask("no.test.", 500*time.Millisecond); err == nil {
		t.Error("refused query was answered")
	}
	if got := p.received(); len(got) != 1 || got[0] != "ok.test." {
		t.Errorf("server received %v, want only ok.test.", got)
	}
	judge.mu.Lock()
	kinds := strings.Join(judge.kinds, ",")
	judge.mu.Unlock()
	if kinds != "query,answer,query" {
		t.Errorf("judged %s, want query,answer,query", kinds)
	}
}

// TestNoReaderFailsClosed: while no reader holds the queue, queries do
// not leave.
func TestNoReaderFailsClosed(t *testing.T) {
	p := newPair(t)
	must(t, Install(testQueue))

	if err := ask("ok.test.", 500*time.Millisecond); err == nil {
		t.Error("a query left with nobody reading the queue")
	}
	if got := p.received(); len(got) != 0 {
		t.Errorf("server received %v with nobody reading the queue", got)
	}
}

// TestGuardMarkPasses: the guard's marked sockets, and TCP from nobody,
// pass or fail as the rules say: marked UDP passes unjudged, TCP to port
// 53 is reset.
func TestGuardMarkPasses(t *testing.T) {
	p := newPair(t)
	must(t, Install(testQueue))

	c := &dns.Client{Timeout: 2 * time.Second, Dialer: &net.Dialer{Control: MarkSocket}}
	m := new(dns.Msg)
	m.SetQuestion("guard.test.", dns.TypeA)
	if _, _, err := c.Exchange(m, "10.77.0.2:53"); err != nil {
		t.Errorf("the guard's marked query (and its answer) did not pass: %v", err)
	}
	if got := p.received(); len(got) != 1 {
		t.Errorf("server received %v, want the marked query", got)
	}

	began := time.Now()
	conn, err := net.DialTimeout("tcp", "10.77.0.2:53", 2*time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("TCP to port 53 connected")
	}
	if time.Since(began) > time.Second {
		t.Errorf("TCP to port 53 failed after %v: want an immediate reset, got %v", time.Since(began), err)
	}
}

// TestInstallIsIdempotentAndRemoveCleans: a second Install adds no second
// jump, the rules of others stay, and Remove leaves nothing of ours.
func TestInstallIsIdempotentAndRemoveCleans(t *testing.T) {
	newPair(t)
	other := exec.Command("iptables", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "DROP")
	if out, err := other.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	must(t, Install(testQueue))
	must(t, Install(testQueue+1))
	for _, cmd := range []string{"iptables", "ip6tables"} {
		rules := listRules(t, cmd)
		for _, j := range jumps {
			if n := strings.Count(rules, "-A "+j.from+" -j "+j.to+"\n"); n != 1 {
				t.Errorf("%s: %d jumps from %s to %s, want 1", cmd, n, j.from, j.to)
			}
		}
		if !strings.Contains(rules, "--queue-num 4054") || strings.Contains(rules, "--queue-num 4053") {
			t.Errorf("%s: the second Install did not replace the queue number:\n%s", cmd, rules)
		}
	}
	if ok, err := Installed(); !ok || err != nil {
		t.Errorf("Installed() = %v, %v after Install", ok, err)
	}

	must(t, Remove())
	must(t, Remove())
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if rules := listRules(t, cmd); strings.Contains(rules, "EDGEWARD") {
			t.Errorf("%s: left after Remove:\n%s", cmd, rules)
		}
	}
	if rules := listRules(t, "iptables"); !strings.Contains(rules, "--dport 9 -j DROP") {
		t.Errorf("Remove took another program's rule:\n%s", rules)
	}
	if ok, _ := Installed(); ok {
		t.Error("Installed() after Remove")
	}
}

func listRules(t *testing.T, cmd string) string {
	t.Helper()
	out, err := exec.Command(cmd, "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -S: %v: %s", cmd, err, out)
	}
	return string(out)
}

// TestParseDatagram: addresses, ports and payload of IPv4 and IPv6
// datagrams; anything else is refused.
func TestParseDatagram(t *testing.T) {
	v4 := []byte{0x45, 0, 0, 33, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
		0x9c, 0x40, 0, 53, 0, 13, 0, 0, 'h', 'e', 'l', 'l', 'o'}
	p, err := parseDatagram(v4)
	if err != nil || p.Src != netip.MustParseAddrPort("10.0.0.1:40000") || p.Dst != netip.MustParseAddrPort("10.0.0.2:53") || string(p.Payload) != "hello" {
		t.Errorf("ipv4: %+v %v", p, err)
	}

	v6 := make([]byte, 40)
	v6[0], v6[6] = 0x60, 17
	v6[23], v6[39] = 1, 2
	v6 = append(v6, 0, 53, 0x9c, 0x40, 0, 10, 0, 0, 'h', 'i')
	p, err = parseDatagram(v6)
	if err != nil || p.Src != netip.MustParseAddrPort("[::1]:53") || p.Dst != netip.MustParseAddrPort("[::2]:40000") || string(p.Payload) != "hi" {
		t.Errorf("ipv6: %+v %v", p, err)
	}

	for name, b := range map[string][]byte{
		"empty":             nil,
		"tcp":               append(append([]byte{}, v4[:9]...), append([]byte{6}, v4[10:]...)...),
		"ihl below 5":       append([]byte{0x44}, v4[1:]...),
		"udp length beyond": append(append([]byte{}, v4[:24]...), 0, 99, 0, 0, 'x'),
		"ipv6 extension":    append(append([]byte{}, v6[:6]...), append([]byte{0}, v6[7:]...)...),
		"version 5":         append([]byte{0x55}, v4[1:]...),
	} {
		if _, err := parseDatagram(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// TestKeepRulesRestores: rules another program flushes or unhooks are
// found changed and put back, and the restore is counted.
func TestKeepRulesRestores(t *testing.T) {
	newPair(t)
	must(t, Install(testQueue))
	if ok, err := Intact(testQueue); !ok || err != nil {
		t.Fatalf("Intact() = %v, %v right after Install", ok, err)
	}
	if ok, _ := Intact(testQueue + 1); ok {
		t.Error("Intact for another queue number")
	}
	q, err := Open(testQueue, 64, (&allowOK{}).judge, nil, slog.Default())
	must(t, err)
	defer q.Close()
	q.KeepRules(100 * time.Millisecond)

	for i, damage := range [][]string{
		{"iptables", "-F", chainFwd},
		{"ip6tables", "-D", "OUTPUT", "-j", chainOut},
		{"iptables", "-I", "FORWARD", "1", "-j", "ACCEPT"}, // a rule ahead of ours
		{"iptables", "-R", chainOut, "4", "-j", "RETURN"},  // one of ours replaced
	} {
		if out, err := exec.Command(damage[0], damage[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", damage, err, out)
		}
		deadline := time.Now().Add(3 * time.Second)
		for s, _ := q.Stats(); s.Restores < uint64(i+1) && time.Now().Before(deadline); s, _ = q.Stats() {
			time.Sleep(50 * time.Millisecond)
		}
		if ok, _ := Intact(testQueue); !ok {
			t.Errorf("%v: not restored within 3 s", damage)
		}
		if s, _ := q.Stats(); s.Restores < uint64(i+1) {
			t.Errorf("%v: %d restores counted, want %d", damage, s.Restores, i+1)
		}
	}
}

// TestOverrunsSurvived: when the reader falls behind and its socket buffer
// overflows, the kernel drops packets and counts them, and the reader goes
// on judging once it catches up.
func TestOverrunsSurvived(t *testing.T) {
	newPair(t)
	must(t, Install(testQueue))
	release := make(chan struct{})
	var once sync.Once
	judge := func(ctx context.Context, p dnsguard.Intercepted) dnsguard.InterceptVerdict {
		<-release // the reader stalls until the flood is over
		return (&allowOK{}).judge(ctx, p)
	}
	q, err := Open(testQueue, 100000, judge, nil, slog.Default())
	must(t, err)
	defer q.Close()
	defer once.Do(func() { close(release) })
	must(t, q.nf.Con.SetReadBuffer(4096))

	flood(t, 5000)
	once.Do(func() { close(release) })

	deadline := time.Now().Add(5 * time.Second)
	var s Stats
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s, _ = q.Stats(); s.Overruns+s.ENOBUFS > 0 && s.Waiting == 0 {
			break
		}
	}
	if s.Overruns+s.ENOBUFS == 0 {
		t.Fatalf("no overrun counted: %+v", s)
	}
	if err := ask("ok.test.", 2*time.Second); err != nil {
		t.Errorf("after the overrun the reader does not judge: %v (stats %+v)", err, s)
	}
}

// flood sends n queries for ok.test from the client's namespace without
// waiting for answers, each from a socket of its own: packets of one
// connection that conntrack has not confirmed yet would not all be queued.
func flood(t *testing.T, n int) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("ok.test.", dns.TypeA)
	b, err := m.Pack()
	must(t, err)
	for range n {
		conn, err := net.Dial("udp", "10.77.0.2:53")
		must(t, err)
		conn.Write(b)
		conn.Close()
	}
}
