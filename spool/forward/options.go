package forward

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/spool"
)

// Defaults for zero Options fields.
const (
	DefaultBatchRecords     = 100
	DefaultBatchBytes       = 1 << 20
	DefaultTimeout          = 10 * time.Second
	DefaultMaxTries         = 5
	DefaultDeadLetterSuffix = spool.DeadLetterSuffix
	DefaultKeepAlive        = 30 * time.Second

	DefaultBackoffMin   = 500 * time.Millisecond
	DefaultBackoffMax   = 60 * time.Second
	DefaultBackoffReset = 30 * time.Second
)

// Options configures a Forwarder. Zero fields take the defaults above.
type Options struct {
	// URL is the upstream: mqtts://[user:password@]host[:port] (port 8883
	// by default) or https://host[:port]/path. Required. Plain mqtt:// and
	// http:// are refused: telemetry leaves the gateway encrypted.
	URL string
	// Topic is the MQTT topic; "{stream}" in it is replaced by the stream
	// name. Required with mqtts, ignored with https. It must not contain
	// the wildcards + and #.
	Topic string
	// Proxy is an optional HTTP CONNECT proxy, http://[user:password@]host:port.
	// The environment (HTTPS_PROXY and friends) is never consulted.
	Proxy string
	// TLS is the client's TLS configuration: roots, client certificate.
	// Nil means the system roots and no client certificate. ServerName is
	// filled from URL when empty. LoadTLS builds one from file names.
	TLS *tls.Config
	// ClientID is the MQTT client identifier; default "edgeward-<hostname>".
	// Two clients with one identifier knock each other off the broker.
	ClientID string

	// BatchRecords and BatchBytes bound one batch: one HTTP request, or
	// the MQTT publishes whose acknowledgements are awaited together. A
	// single record larger than BatchBytes still goes, alone.
	BatchRecords int
	BatchBytes   int
	// Timeout bounds every step on its own: TCP connect, proxy CONNECT,
	// TLS handshake, MQTT CONNACK, each PUBACK (counted from the previous
	// one), a whole HTTP exchange.
	Timeout time.Duration
	// KeepAlive is the MQTT keep-alive interval; a dead link is noticed
	// after about KeepAlive+Timeout even when nothing is sent.
	KeepAlive time.Duration

	// MaxTries is how often a record the upstream rejects for good is sent
	// before it moves to the dead-letter stream.
	MaxTries int
	// DeadLetterSuffix names the dead-letter stream of a stream: stream
	// "line1" sends its rejected records to "line1.dead". Streams whose
	// name ends in the suffix are never forwarded.
	DeadLetterSuffix string

	// Backoff paces retries after a failure.
	Backoff Backoff

	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// After waits for a backoff delay; nil means time.After. Tests replace
	// both to run without real sleeps.
	After func(time.Duration) <-chan time.Time
}

// Backoff paces retries: after the n-th failure in a row the forwarder
// waits a random time in [Min, min(Max, Min·2^n)) ("full jitter" above a
// floor, so that no delay is shorter than Min). The count of failures is
// reset only when the link has delivered for ResetAfter without a
// failure, so a link that connects and breaks at once does not retry at
// the floor forever.
type Backoff struct {
	Min        time.Duration
	Max        time.Duration
	ResetAfter time.Duration
	// Rand returns a number in [0, 1); nil means math/rand/v2.
	Rand func() float64
}

// OptionsFromConfig turns the configuration's forward section into
// Options, loading the TLS files. It fails when a file cannot be read or
// holds no usable certificate or key; the error names the file.
func OptionsFromConfig(c config.Forward) (Options, error) {
	cfg, err := LoadTLS(c.TLS)
	if err != nil {
		return Options{}, err
	}
	return Options{URL: c.URL, Topic: c.Topic, Proxy: c.Proxy, TLS: cfg}, nil
}

// LoadTLS reads a CA bundle and a client certificate and key (PEM files;
// every field optional, Cert and Key together) into a TLS configuration.
// Files are read once: a rotated certificate needs a new Forwarder.
func LoadTLS(t config.TLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}

	if t.CA != "" {
		pool, err := loadCA(t.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}

	if (t.Cert == "") != (t.Key == "") {
		return nil, errors.New("tls: cert and key must be given together")
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate %s, key %s: %w", t.Cert, t.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// loadCA reads a PEM bundle of CA certificates.
func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls ca: %w", err)
	}

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls ca %s: no PEM certificate found", path)
	}
	return pool, nil
}

// withDefaults fills zero fields and checks the rest.
func (o Options) withDefaults() (Options, error) {
	o.BatchRecords = orDefault(o.BatchRecords, DefaultBatchRecords)
	o.BatchBytes = orDefault(o.BatchBytes, DefaultBatchBytes)
	o.MaxTries = orDefault(o.MaxTries, DefaultMaxTries)
	o.Timeout = orDefault(o.Timeout, DefaultTimeout)
	o.KeepAlive = orDefault(o.KeepAlive, DefaultKeepAlive)
	if o.DeadLetterSuffix == "" {
		o.DeadLetterSuffix = DefaultDeadLetterSuffix
	}
	if !spool.ValidStreamName("a"+o.DeadLetterSuffix) || len(o.DeadLetterSuffix) > 32 {
		return o, fmt.Errorf("dead letter suffix %q: want at most 32 of [a-z0-9._-]", o.DeadLetterSuffix)
	}

	o.Backoff = o.Backoff.withDefaults()
	if o.Backoff.Max < o.Backoff.Min {
		return o, fmt.Errorf("backoff: max %s below min %s", o.Backoff.Max, o.Backoff.Min)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.ClientID == "" {
		o.ClientID = defaultClientID()
	}
	if o.TLS == nil {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// withDefaults fills zero fields of b.
func (b Backoff) withDefaults() Backoff {
	b.Min = orDefault(b.Min, DefaultBackoffMin)
	b.Max = orDefault(b.Max, DefaultBackoffMax)
	b.ResetAfter = orDefault(b.ResetAfter, DefaultBackoffReset)
	if b.Rand == nil {
		b.Rand = rand.Float64
	}
	return b
}

// orDefault returns v, or def when v is not positive.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// defaultClientID derives the MQTT client identifier from the host name.
func defaultClientID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "edgeward"
	}
	return "edgeward-" + host
}

// upstream is a parsed and checked Options.URL.
type upstream struct {
	url  *url.URL
	mqtt bool
	addr string // host:port
	host string // for TLS ServerName
}

// parseUpstream checks the URL, the topic and the proxy.
func parseUpstream(o Options) (upstream, *url.URL, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return upstream{}, nil, fmt.Errorf("forward url: %w", err)
	}
	if u.Hostname() == "" {
		return upstream{}, nil, fmt.Errorf("forward url %q: no host", o.URL)
	}

	up := upstream{url: u, host: u.Hostname()}
	switch u.Scheme {
	case "mqtts":
		up.mqtt = true
		up.addr = hostPort(u, "8883")
		err = checkTopic(o.Topic)
	case "https":
		up.addr = hostPort(u, "443")
	default:
		err = fmt.Errorf("forward url %q: scheme %q: want mqtts or https", o.URL, u.Scheme)
	}
	if err != nil {
		return upstream{}, nil, err
	}

	proxy, err := parseProxy(o.Proxy)
	return up, proxy, err
}

// hostPort returns the URL's host with its port or def.
func hostPort(u *url.URL, def string) string {
	if p := u.Port(); p != "" {
		return net.JoinHostPort(u.Hostname(), p)
	}
	return net.JoinHostPort(u.Hostname(), def)
}

// checkTopic refuses an empty topic and wildcards.
func checkTopic(topic string) error {
	if topic == "" {
		return errors.New("forward topic: required with mqtts")
	}
	if strings.ContainsAny(topic, "+#\x00") {
		return fmt.Errorf("forward topic %q: wildcards + and # are not allowed in a publish topic", topic)
	}
	return nil
}

// parseProxy checks an optional http:// proxy URL.
func parseProxy(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}

	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("forward proxy: %w", err)
	}
	if u.Scheme != "http" || u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("forward proxy %q: want http://host:port", s)
	}
	return u, nil
}
