package forward

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// dialer opens TCP and TLS connections to the upstream, directly or
// through an HTTP CONNECT proxy, each step bounded by timeout.
type dialer struct {
	proxy   *url.URL // nil: direct
	tls     *tls.Config
	timeout time.Duration
}

// dialTLS connects to addr and completes a TLS handshake for host. The
// error says which step failed: proxy, tunnel, TCP or TLS.
func (d dialer) dialTLS(ctx context.Context, addr, host string) (net.Conn, error) {
	conn, err := d.dial(ctx, addr)
	if err != nil {
		return nil, err
	}

	cfg := d.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	hctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// dial opens a TCP connection to addr, through the proxy if there is one.
func (d dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	if d.proxy == nil {
		conn, err := nd.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		return conn, nil
	}

	conn, err := nd.DialContext(ctx, "tcp", d.proxy.Host)
	if err != nil {
		return nil, fmt.Errorf("dial proxy %s: %w", d.proxy.Host, err)
	}
	if err := d.tunnel(ctx, conn, addr); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// tunnel asks the proxy on conn to CONNECT to addr and reads its answer
// within the timeout; anything but 200 is an error that carries the
// proxy's status line.
func (d dialer) tunnel(ctx context.Context, conn net.Conn, addr string) error {
	conn.SetDeadline(time.Now().Add(d.timeout))
	defer conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if u := d.proxy.User; u != nil {
		pass, _ := u.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.Username() + ":" + pass))
		req.Header.Set("Proxy-Authorization", "Basic "+cred)
	}
	if err := req.Write(conn); err != nil {
		return fmt.Errorf("proxy %s: connect to %s: %w", d.proxy.Host, addr, err)
	}

	return d.readTunnelAnswer(conn, req, addr)
}

// readTunnelAnswer reads the proxy's reply to CONNECT.
func (d dialer) readTunnelAnswer(conn net.Conn, req *http.Request, addr string) error {
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fmt.Errorf("proxy %s: connect to %s: %w", d.proxy.Host, addr, err)
	}
	resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("proxy %s: connect to %s: %s", d.proxy.Host, addr, resp.Status)
	}
	if br.Buffered() > 0 {
		return fmt.Errorf("proxy %s: connect to %s: data before the tunnel opened", d.proxy.Host, addr)
	}
	return nil
}
