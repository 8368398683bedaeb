package sandbox

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SetProxyDown stops tinyproxy (down) or starts it again (up) with the
// configuration Start wrote, and waits up to 5 s until the gateway can
// connect to it over IPv4; up while it runs only waits. While it is
// down, connections to the proxy address are refused. It fails on a
// sandbox without the proxy, a closed one, or when tinyproxy does not
// come back.
func (s *Sandbox) SetProxyDown(down bool) error {
	if s.opts.WithoutProxy {
		return fmt.Errorf("set proxy state: sandbox runs without proxy")
	}
	if down {
		for _, p := range s.runningProxies() {
			if err := p.Stop(); err != nil {
				return fmt.Errorf("stop proxy: %w", err)
			}
		}
		return nil
	}

	if running := s.runningProxies(); len(running) > 0 {
		return s.waitListening(Gateway, Addr(ProxyAddr4, ProxyPort), running[0])
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	p, err := s.spawn(WAN, "tinyproxy", "tinyproxy", "-d", "-c", filepath.Join(s.Dir, "tinyproxy.conf"))
	if err == nil {
		s.procs = append(s.procs, p)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("restart proxy: %w", err)
	}
	// Only IPv4: an enforcing gateway may deny its own IPv6 to the proxy.
	if err := s.waitListening(Gateway, Addr(ProxyAddr4, ProxyPort), p); err != nil {
		return fmt.Errorf("restart proxy: %w", err)
	}
	return nil
}

// runningProxies returns the tinyproxy processes that still run.
func (s *Sandbox) runningProxies() []*Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Process
	for _, p := range s.procs {
		if p.Name == "tinyproxy" && !p.Exited() {
			out = append(out, p)
		}
	}
	return out
}

// HTTPClient returns a client whose sockets are made in host h's
// namespace, that trusts only the sandbox CA, uses no proxy and gives up
// on a request after timeout. Plain http:// works as well.
func (s *Sandbox) HTTPClient(h Host, timeout time.Duration) *http.Client {
	c, _ := s.httpClient(h, "", timeout) // fails only on a bad proxy URL
	return c
}

// ProxyConnects counts the CONNECT requests to target ("ip:port") in
// tinyproxy's log, over every run of the proxy; 0 when the log cannot be
// read.
func (s *Sandbox) ProxyConnects(target string) int {
	data, err := os.ReadFile(filepath.Join(s.Dir, "tinyproxy-access.log"))
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "CONNECT "+target)
}
