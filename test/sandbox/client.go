package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// curlDefaultTimeout is curl's --max-time when ctx has no deadline.
const curlDefaultTimeout = 10 * time.Second

// Command returns `ip netns exec NS name args...` for host h, ready to
// run, with the proxy variables removed from its environment. The
// caller runs and reaps it; use [Sandbox.StartProcess] for programs that
// should end with the sandbox.
func (s *Sandbox) Command(ctx context.Context, h Host, name string, args ...string) *exec.Cmd {
	argv := append([]string{"netns", "exec", s.NetNS(h), name}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	cmd.Env = cleanEnv()
	if err := s.checkGuardTarget(args); err != nil {
		cmd.Err = err // Start and Run return it; nothing runs
	}
	return cmd
}

// dial connects from host h's namespace. Only the socket's creation
// needs the namespace; the connection works from any goroutine after.
func (s *Sandbox) dial(h Host, network, addr string, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := s.Do(h, func() error {
		var err error
		conn, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, addr, h, err)
	}
	return conn, nil
}

// DialTCP opens a TCP connection from host h to addr ("ip:port") and
// closes it again: nil means the handshake completed within timeout. It
// sends no data.
func (s *Sandbox) DialTCP(h Host, addr string, timeout time.Duration) error {
	conn, err := s.dial(h, "tcp", addr, timeout)
	if err != nil {
		return err
	}
	return conn.Close()
}

// EchoTCP connects from host h to an echo server at addr, sends one
// random line and expects the same bytes back, all within timeout.
func (s *Sandbox) EchoTCP(h Host, addr string, timeout time.Duration) error {
	return s.echoOnce(h, "tcp", addr, timeout)
}

// EchoUDP sends one random datagram from host h to an echo server at
// addr and expects it back within timeout. A lost datagram and a
// dropped one look the same: both time out.
func (s *Sandbox) EchoUDP(h Host, addr string, timeout time.Duration) error {
	return s.echoOnce(h, "udp", addr, timeout)
}

// echoOnce sends a random line over a fresh connection and checks the
// reply.
func (s *Sandbox) echoOnce(h Host, network, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	conn, err := s.dial(h, network, addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)

	want := []byte(randomToken() + "\n")
	if _, err := conn.Write(want); err != nil {
		return fmt.Errorf("echo %s %s from %s: send: %w", network, addr, h, err)
	}

	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("echo %s %s from %s: receive: %w", network, addr, h, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("echo %s %s from %s: got %q, want %q", network, addr, h, got, want)
	}
	return nil
}

// randomToken returns 16 random hex digits.
func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// HTTPSGet fetches url from host h with a Go client that trusts only the
// sandbox CA, through proxy (an http:// URL such as [ProxyURL4], or ""
// for a direct connection), and returns the status. A proxy that refuses
// the CONNECT gives an error, not a status.
func (s *Sandbox) HTTPSGet(h Host, url, proxy string,
	timeout time.Duration) (status int, err error) {
	status, _, err = s.HTTPSGetBody(h, url, proxy, timeout)
	return status, err
}

// HTTPSGetBody is HTTPSGet that also returns up to 64 KiB of the body.
func (s *Sandbox) HTTPSGetBody(h Host, rawURL, proxy string,
	timeout time.Duration) (status int, body string, err error) {
	client, err := s.httpClient(h, proxy, timeout)
	if err != nil {
		return 0, "", err
	}
	defer client.CloseIdleConnections()

	resp, err := client.Get(rawURL)
	if err != nil {
		return 0, "", fmt.Errorf("get %s from %s: %w", rawURL, h, err)
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp.StatusCode, "", fmt.Errorf("get %s from %s: body: %w", rawURL, h, err)
	}
	return resp.StatusCode, string(data), nil
}

// httpClient builds a client whose sockets are made in host h's
// namespace and which trusts only the sandbox CA.
func (s *Sandbox) httpClient(h Host, proxy string, timeout time.Duration) (*http.Client, error) {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.dial(h, network, addr, timeout)
		},
		TLSClientConfig:   &tls.Config{RootCAs: s.ca.pool},
		DisableKeepAlives: true,
	}

	if proxy != "" {
		u, err := url.Parse(proxy)
		if err != nil {
			return nil, fmt.Errorf("proxy url %q: %w", proxy, err)
		}
		transport.Proxy = http.ProxyURL(u)
	}
	return &http.Client{Transport: transport, Timeout: timeout}, nil
}

// Curl runs curl in host h with --silent --show-error, the sandbox CA
// and --max-time from ctx's deadline (10 s without one), followed by
// args; it returns standard output. The error carries curl's standard
// error; curl's exit code is in an *exec.ExitError inside it (7: could
// not connect, 28: timed out, 56: proxy refused the CONNECT).
func (s *Sandbox) Curl(ctx context.Context, h Host, args ...string) (string, error) {
	base := []string{"--silent", "--show-error",
		"--cacert", s.CAFile(), "--max-time", curlMaxTime(ctx)}

	var stdout, stderr bytes.Buffer
	cmd := s.Command(ctx, h, "curl", append(base, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("curl %s in %s: %w: %s",
			strings.Join(args, " "), h, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// curlMaxTime returns the seconds left until ctx's deadline, at least 1.
func curlMaxTime(ctx context.Context) string {
	left := curlDefaultTimeout
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	return strconv.Itoa(int(math.Max(1, math.Floor(left.Seconds()))))
}

// CAFile returns the path of the sandbox CA certificate (PEM) that signs
// every sandbox server certificate.
func (s *Sandbox) CAFile() string {
	return s.ca.file
}

// CAPool returns a pool that holds only the sandbox CA, for Go clients.
func (s *Sandbox) CAPool() *x509.CertPool {
	return s.ca.pool
}
