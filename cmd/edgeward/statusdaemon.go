package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/dnsguard"
	"github.com/edgeward/edgeward/intercept"
	"github.com/edgeward/edgeward/spool"
	"github.com/edgeward/edgeward/spool/forward"
)

// The daemon's part of `edgeward status`: GET /v1/status on the control
// socket. It holds only what lives in the daemon's memory; the kernel
// part is read from the pins by the status command itself.

const (
	// statusTimeout bounds the status request: a daemon that does not
	// answer in time is reported as unavailable.
	statusTimeout = 5 * time.Second
	// maxStatusAddrs bounds the addresses one request may ask names for.
	maxStatusAddrs = 100
)

// statusDaemon is the daemon part of the report. Running is false and
// Error says why when no daemon answered; the other fields are then
// empty. Spool, Forwarder and DNS are nil when the daemon runs without
// them. Counters start at zero when the daemon starts.
type statusDaemon struct {
	Running   bool             `json:"running"`
	Error     string           `json:"error,omitempty"`
	PID       int              `json:"pid,omitempty"`
	Version   string           `json:"version,omitempty"`
	Started   *time.Time       `json:"started,omitempty"`
	Spool     *statusSpool     `json:"spool,omitempty"`
	Forwarder *statusForwarder `json:"forwarder,omitempty"`
	DNS       *statusDNS       `json:"dns,omitempty"`
}

type statusSpool struct {
	Dir       string         `json:"dir"`
	DiskBytes int64          `json:"disk_bytes"`
	Streams   []statusStream `json:"streams"`
}

// statusStream is one spool stream. Dropped has every reason of
// spool.DropReasons, dead_letter included.
type statusStream struct {
	Stream           string            `json:"stream"`
	BacklogRecords   int64             `json:"backlog_records"`
	BacklogBytes     int64             `json:"backlog_bytes"`
	OldestAgeSeconds float64           `json:"oldest_age_seconds"`
	FirstSeq         uint64            `json:"first_seq"`
	LastSeq          uint64            `json:"last_seq"`
	Appended         uint64            `json:"appended"`
	Forwarded        uint64            `json:"forwarded"`
	Dropped          map[string]uint64 `json:"dropped"`
}

// statusForwarder is the forwarder's view of its upstream.
type statusForwarder struct {
	Target        string     `json:"target"`
	Proxy         string     `json:"proxy,omitempty"`
	Connected     bool       `json:"connected"`
	Since         *time.Time `json:"since,omitempty"`
	LastSuccess   *time.Time `json:"last_success,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastErrorTime *time.Time `json:"last_error_time,omitempty"`
	Failures      int        `json:"failures"`
	NextTry       *time.Time `json:"next_try,omitempty"`
	DeadLettered  uint64     `json:"dead_lettered"`
}

type statusDNS struct {
	Upstreams   []statusUpstream   `json:"upstreams"`
	Transparent *statusTransparent `json:"transparent,omitempty"`
}

// statusTransparent is the transparent mode's queue and what it judged,
// since the guard started.
type statusTransparent struct {
	Queue         uint16                       `json:"queue"`
	Waiting       uint64                       `json:"waiting"`
	QueueFull     uint64                       `json:"dropped_queue_full"`
	Overruns      uint64                       `json:"dropped_receive_overrun"`
	Unparsable    uint64                       `json:"dropped_unparsable"`
	RulesRestored uint64                       `json:"rules_restored"`
	Intercepted   map[string]map[string]uint64 `json:"intercepted"`
}

type statusUpstream struct {
	Zones       []string   `json:"zones"`
	Server      string     `json:"server"`
	Answers     uint64     `json:"answers"`
	Failures    uint64     `json:"failures"`
	LastAnswer  *time.Time `json:"last_answer,omitempty"`
	LastFailure *time.Time `json:"last_failure,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
}

// daemonAnswer is the body of GET /v1/status: the daemon part, and the
// query names of the addresses asked for with addr= (those the DNS guard
// holds a name for).
type daemonAnswer struct {
	statusDaemon
	LearnedNames map[string]string `json:"learned_names,omitempty"`
}

// serveStatus answers GET /v1/status[?addr=A&addr=B...]. It answers 400
// for an address that does not parse or more than maxStatusAddrs.
func (d *daemon) serveStatus(w http.ResponseWriter, r *http.Request) {
	addrs, err := parseStatusAddrs(r.URL.Query()["addr"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(d.status(addrs))
}

func parseStatusAddrs(values []string) ([]netip.Addr, error) {
	if len(values) > maxStatusAddrs {
		return nil, fmt.Errorf("%d addresses asked, at most %d", len(values), maxStatusAddrs)
	}
	out := make([]netip.Addr, 0, len(values))
	for _, v := range values {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("addr: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// status collects the daemon part from memory; it does no I/O.
func (d *daemon) status(addrs []netip.Addr) daemonAnswer {
	started := d.started
	a := daemonAnswer{statusDaemon: statusDaemon{
		Running: true, PID: os.Getpid(), Version: version, Started: &started,
	}}
	if svc := d.spool; svc != nil {
		a.Spool = spoolStatus(svc.dir, svc.spool.Stats())
		if svc.forwarder != nil {
			a.Forwarder = forwarderStatus(svc.target, svc.forwarder.State())
		}
	}
	if g := d.guard.Load(); g != nil {
		a.DNS = dnsStatus(g.Upstreams())
		if q := d.queue.Load(); q != nil {
			a.DNS.Transparent = transparentStatus(d.cfg.DNS.Queue.Number, q, g)
		}
		a.LearnedNames = map[string]string{}
		for addr, name := range g.LearnedNames(addrs) {
			a.LearnedNames[addr.String()] = name
		}
	}
	return a
}

func spoolStatus(dir string, st spool.Stats) *statusSpool {
	out := &statusSpool{Dir: dir, DiskBytes: st.DiskBytes, Streams: []statusStream{}}
	for _, s := range st.Streams {
		dropped := map[string]uint64{}
		for _, r := range spool.DropReasons {
			dropped[string(r)] = s.Dropped[r]
		}
		out.Streams = append(out.Streams, statusStream{
			Stream: s.Stream, BacklogRecords: s.BacklogRecords, BacklogBytes: s.BacklogBytes,
			OldestAgeSeconds: s.OldestAge.Seconds(), FirstSeq: s.FirstSeq, LastSeq: s.LastSeq,
			Appended: s.Appended, Forwarded: s.Forwarded, Dropped: dropped,
		})
	}
	return out
}

// forwardTarget names the forwarder's upstream and proxy with any
// password in them replaced.
type forwardTarget struct {
	url, proxy string
}

func newForwardTarget(cfg config.Forward) forwardTarget {
	return forwardTarget{url: redactURL(cfg.URL), proxy: redactURL(cfg.Proxy)}
}

// redactURL hides the password of a URL; a string that does not parse
// is hidden whole, since it might hold one.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func forwarderStatus(t forwardTarget, st forward.State) *statusForwarder {
	return &statusForwarder{
		Target: t.url, Proxy: t.proxy, Connected: st.Up, Since: timeOrNil(st.Since),
		LastSuccess: timeOrNil(st.LastSuccess), LastError: st.LastError, LastErrorTime: timeOrNil(st.LastErrorTime),
		Failures: st.Failures, NextTry: timeOrNil(st.NextTry), DeadLettered: st.DeadLettered,
	}
}

func dnsStatus(ups []dnsguard.UpstreamState) *statusDNS {
	out := &statusDNS{Upstreams: []statusUpstream{}}
	for _, u := range ups {
		out.Upstreams = append(out.Upstreams, statusUpstream{
			Zones: u.Zones, Server: u.Server, Answers: u.Answers, Failures: u.Failures,
			LastAnswer: timeOrNil(u.LastAnswer), LastFailure: timeOrNil(u.LastFailure), LastError: u.LastError,
		})
	}
	return out
}

// transparentStatus reads the queue's counters (the kernel's from
// /proc, which is cheap) and the guard's judgements.
func transparentStatus(num uint16, q *intercept.Queue, g *dnsguard.Guard) *statusTransparent {
	st, _ := q.Stats()
	return &statusTransparent{
		Queue: num, Waiting: st.Waiting, QueueFull: st.QueueFull, Overruns: st.Overruns + st.ENOBUFS,
		Unparsable: st.Unparsable, RulesRestored: st.Restores, Intercepted: g.InterceptedCounts(),
	}
}

// timeOrNil drops the zero time, which means "never", from the JSON.
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// readDaemon asks the daemon for its part and merges the query names of
// the listed learned destinations. A daemon that does not answer leaves
// Running false with the reason in Error.
func (r *statusReport) readDaemon(socket string) {
	addrs := r.Learned.nextAddrs()
	// The daemon names at most maxStatusAddrs per request; the others
	// show without a query name.
	a, err := fetchDaemonStatus(socket, addrs[:min(len(addrs), maxStatusAddrs)])
	if err != nil {
		r.Daemon = statusDaemon{Error: err.Error()}
		return
	}
	r.Daemon = a.statusDaemon
	for i, d := range r.Learned.Next {
		r.Learned.Next[i].Name = a.LearnedNames[d.Addr]
	}
}

// dialCause strips the request and the socket path, which the caller
// names, from a failed request: "connect: connection refused".
func dialCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// fetchDaemonStatus sends GET /v1/status to the daemon on socket. It
// fails when no daemon answers within statusTimeout or the answer is not
// a status.
func fetchDaemonStatus(socket string, addrs []netip.Addr) (*daemonAnswer, error) {
	q := url.Values{}
	for _, a := range addrs {
		q.Add("addr", a.String())
	}
	client := controlClient(socket)
	client.Timeout = statusTimeout
	resp, err := client.Get("http://edgeward/v1/status?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("no daemon answers on %s: %w", socket, dialCause(err))
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("daemon on %s answered %s: %s", socket, resp.Status, bytes.TrimSpace(body))
	}
	var a daemonAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("bad status from the daemon on %s: %w", socket, err)
	}
	if !a.Running {
		return nil, fmt.Errorf("bad status from the daemon on %s: not running", socket)
	}
	return &a, nil
}
