package sandbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// serviceWait bounds how long StartBroker and SetProxyDown wait for a
// program to listen, and the subscriber for the broker.
const serviceWait = 5 * time.Second

// Broker is a mosquitto in the cloud (vpc) on [VPCEndpoint4]:[MQTTSPort]
// with TLS that requires a client certificate from the sandbox CA, and
// an MQTT subscriber in the same namespace whose messages (spool/forward
// envelopes) land in Inbox. It replaces the TCP echo on that address.
type Broker struct {
	// Addr is the broker's "ip:port".
	Addr string
	// Inbox holds every message the subscriber received, in order.
	Inbox *Inbox
	// Log is mosquitto's log file.
	Log string

	proc *Process
}

// StartBroker starts mosquitto in vpc (ended with the sandbox, by PID)
// and a subscriber to topic (a filter such as "plant/#", QoS 1), and
// returns when the subscription is acknowledged. It fails when mosquitto
// is not installed (Debian package mosquitto), exits, or does not accept
// the subscriber within 5 s.
func (s *Sandbox) StartBroker(topic string) (*Broker, error) {
	bin, err := mosquittoPath()
	if err != nil {
		return nil, err
	}
	addr := Addr(VPCEndpoint4, MQTTSPort)
	if err := s.replaceServer(addr); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	conf, logFile, err := s.writeBrokerConfig()
	if err != nil {
		return nil, err
	}
	p, err := s.StartProcess(VPC, "mosquitto", bin, "-c", conf)
	if err != nil {
		return nil, err
	}
	b := &Broker{Addr: addr, Inbox: &Inbox{}, Log: logFile, proc: p}
	if err := s.waitListening(VPC, addr, p); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if err := s.subscribe(b, topic); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	return b, nil
}

// mosquittoPath finds mosquitto, which Debian installs in /usr/sbin
// (not always on PATH).
func mosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", fmt.Errorf("%w mosquitto: install the Debian package mosquitto", ErrMissingProgram)
}

// writeBrokerConfig issues the broker's certificate and writes its
// configuration: it stays root (Dir is private to root), answers
// PUBACKs without Nagle delay and keeps no state across restarts.
func (s *Sandbox) writeBrokerConfig() (conf, logFile string, err error) {
	cert, key, err := s.IssueCert("mosquitto", VPCEndpoint4)
	if err != nil {
		return "", "", fmt.Errorf("broker certificate: %w", err)
	}
	conf = filepath.Join(s.Dir, "mosquitto.conf")
	logFile = filepath.Join(s.Dir, "mosquitto-broker.log")
	lines := []string{
		"user root",
		"persistence false",
		"log_dest file " + logFile,
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
		"connection_messages true",
		"max_queued_messages 0",
		"set_tcp_nodelay true",
		fmt.Sprintf("listener %d %s", MQTTSPort, VPCEndpoint4),
		"allow_anonymous true",
		"cafile " + s.CAFile(),
		"certfile " + cert,
		"keyfile " + key,
		"require_certificate true",
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write broker config: %w", err)
	}
	return conf, logFile, nil
}

// waitListening polls until something in host h accepts TCP on addr,
// for at most serviceWait; it fails early when p exits.
func (s *Sandbox) waitListening(h Host, addr string, p *Process) error {
	ctx, cancel := context.WithTimeout(context.Background(), serviceWait)
	defer cancel()
	var lastErr error
	check := func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("%s exited: %s", p.Name, p.Tail(10))
		}
		lastErr = s.DialTCP(h, addr, 200*time.Millisecond)
		return lastErr == nil, nil
	}
	if err := poll(ctx, 20*time.Millisecond, check); err != nil {
		return fmt.Errorf("%s on %s: %w", p.Name, addr, errors.Join(err, lastErr))
	}
	return nil
}

// subscribe connects an MQTT client from vpc with its own certificate
// and subscribes to topic at QoS 1; each message goes to b.Inbox. The
// client is disconnected when the sandbox closes.
func (s *Sandbox) subscribe(b *Broker, topic string) error {
	cert, err := s.ca.issue("mqtt-subscriber", "mqtt-subscriber")
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{RootCAs: s.ca.pool, Certificates: []tls.Certificate{cert}, ServerName: VPCEndpoint4}
	opts := mqtt.NewClientOptions().
		AddBroker("ssl://" + b.Addr).
		SetClientID("sandbox-subscriber-" + s.ID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetProtocolVersion(4).
		SetConnectTimeout(serviceWait).
		SetOrderMatters(true).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			conn, err := s.dial(VPC, "tcp", b.Addr, serviceWait)
			if err != nil {
				return nil, err
			}
			return tls.Client(conn, tlsCfg), nil
		})
	client := mqtt.NewClient(opts)
	if err := waitMQTT(client.Connect()); err != nil {
		return fmt.Errorf("subscriber connect: %w", err)
	}
	s.srv.track(closerFunc(func() error { client.Disconnect(100); return nil }))

	handler := func(_ mqtt.Client, m mqtt.Message) {
		d, err := parseEnvelope(m.Payload())
		if err != nil {
			b.Inbox.problem("topic %s: %v", m.Topic(), err)
			return
		}
		b.Inbox.add(d)
	}
	if err := waitMQTT(client.Subscribe(topic, 1, handler)); err != nil {
		return fmt.Errorf("subscribe %s: %w", topic, err)
	}
	return nil
}

// waitMQTT waits for a paho token up to serviceWait.
func waitMQTT(tok mqtt.Token) error {
	if !tok.WaitTimeout(serviceWait) {
		return fmt.Errorf("no answer within %s", serviceWait)
	}
	return tok.Error()
}
