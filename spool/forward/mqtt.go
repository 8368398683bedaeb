package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeward/edgeward/spool"
)

// errAckTimeout means the broker did not acknowledge in time; the link
// is torn down because its state is unknown.
var errAckTimeout = errors.New("no acknowledgement in time")

// mqttLink is one MQTT 3.1.1 connection (paho), clean session, no
// automatic reconnect: when it breaks, the session ends and the
// forwarder dials a new one after its backoff, so no unacknowledged
// publish hides in paho's store.
type mqttLink struct {
	opts   Options
	up     upstream
	dial   dialer
	client mqtt.Client

	lostCh   chan struct{}
	lostOnce sync.Once
}

// newMQTTLink prepares a link; it dials nothing.
func newMQTTLink(o Options, up upstream, proxy *url.URL) *mqttLink {
	return &mqttLink{
		opts:   o,
		up:     up,
		dial:   dialer{proxy: proxy, tls: o.TLS, timeout: o.Timeout},
		lostCh: make(chan struct{}),
	}
}

func (m *mqttLink) lost() <-chan struct{} { return m.lostCh }
func (m *mqttLink) standing() bool        { return true }

// connect dials (through the proxy if any), completes TLS and waits for
// CONNACK, each within the timeout.
func (m *mqttLink) connect(ctx context.Context) error {
	m.client = mqtt.NewClient(m.clientOptions(ctx))

	tok := m.client.Connect()
	if err := waitToken(ctx, tok, 3*m.opts.Timeout); err != nil {
		return fmt.Errorf("connect mqtts://%s: %w", m.up.addr, err)
	}
	return nil
}

// clientOptions configures paho; ctx bounds the dial.
func (m *mqttLink) clientOptions(ctx context.Context) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker("ssl://" + m.up.addr).
		SetClientID(m.opts.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetProtocolVersion(4).
		SetConnectTimeout(m.opts.Timeout).
		SetWriteTimeout(m.opts.Timeout).
		SetPingTimeout(m.opts.Timeout).
		SetKeepAlive(m.opts.KeepAlive).
		SetConnectionLostHandler(func(mqtt.Client, error) { m.markLost() }).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			return m.dial.dialTLS(ctx, m.up.addr, m.up.host)
		})

	if u := m.up.url.User; u != nil {
		pass, _ := u.Password()
		o.SetUsername(u.Username()).SetPassword(pass)
	}
	return o
}

// markLost closes lostCh once.
func (m *mqttLink) markLost() {
	m.lostOnce.Do(func() { close(m.lostCh) })
}

// close disconnects, waiting briefly for the DISCONNECT to go out.
func (m *mqttLink) close() {
	if m.client != nil {
		m.client.Disconnect(100)
	}
	m.markLost()
}

// send publishes every record with QoS 1, then waits for the PUBACKs in
// order; the count returned stops at the first record not acknowledged.
// Paho matches each PUBACK to its publish by packet identifier.
func (m *mqttLink) send(ctx context.Context, recs []spool.Record) (int, error) {
	topic := strings.ReplaceAll(m.opts.Topic, "{stream}", recs[0].Stream)

	toks := make([]mqtt.Token, len(recs))
	for i, rec := range recs {
		toks[i] = m.client.Publish(topic, 1, false, envelope(rec, ""))
	}

	for i, tok := range toks {
		if err := waitToken(ctx, tok, m.opts.Timeout); err != nil {
			return i, m.classify(recs[i], err)
		}
	}
	return len(recs), nil
}

// classify wraps a publish failure. MQTT 3.1.1 has no negative PUBACK: a
// broker refuses by closing the connection, which is a failure to retry
// like any link loss. Only an error on a link that is still open and is
// not one of paho's link errors counts as a rejection.
func (m *mqttLink) classify(rec spool.Record, err error) error {
	wrapped := fmt.Errorf("publish %s %d: %w", rec.Stream, rec.Seq, err)
	if linkError(err) || !m.client.IsConnectionOpen() {
		return wrapped
	}
	return &RejectedError{Detail: wrapped.Error()}
}

// linkError reports whether a paho publish error is about the link.
// Paho has no sentinels for most of them, so the words are matched.
func linkError(err error) bool {
	if errors.Is(err, mqtt.ErrNotConnected) || errors.Is(err, errAckTimeout) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection lost", "timeout", "no message IDs"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// waitToken waits for tok to complete within d and returns its error.
func waitToken(ctx context.Context, tok mqtt.Token, d time.Duration) error {
	select {
	case <-tok.Done():
		return tok.Error()
	default:
	}

	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return errAckTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}
