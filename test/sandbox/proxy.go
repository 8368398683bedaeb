package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// proxyClients are the networks tinyproxy accepts clients from.
var proxyClients = []string{LANPrefix4, UplinkPrefix4, LANPrefix6, UplinkPrefix6}

// proxyConnectPorts are the only ports tinyproxy tunnels CONNECT to.
var proxyConnectPorts = []int{HTTPSPort, MQTTSPort}

// proxyConfig renders tinyproxy's configuration: listen on the proxy
// addresses, serve only the sandbox networks, CONNECT only to 443 and
// 8883, log to logFile.
func proxyConfig(logFile string) string {
	lines := []string{
		fmt.Sprintf("Port %d", ProxyPort),
		"Listen " + ProxyAddr4,
		"Listen " + ProxyAddr6,
		"Timeout 60",
		"MaxClients 64",
		"LogLevel Info",
		"LogFile \"" + logFile + "\"",
		"DisableViaHeader Yes",
	}
	for _, c := range proxyClients {
		lines = append(lines, "Allow "+c)
	}
	for _, p := range proxyConnectPorts {
		lines = append(lines, fmt.Sprintf("ConnectPort %d", p))
	}
	return strings.Join(lines, "\n") + "\n"
}

// startProxy writes the configuration, runs tinyproxy in the foreground
// in wan and waits up to 5 s until the gateway can connect to it on both
// addresses.
func (s *Sandbox) startProxy(ctx context.Context) error {
	conf := filepath.Join(s.Dir, "tinyproxy.conf")
	logFile := filepath.Join(s.Dir, "tinyproxy-access.log")
	if err := os.WriteFile(conf, []byte(proxyConfig(logFile)), 0o600); err != nil {
		return fmt.Errorf("write proxy config: %w", err)
	}

	p, err := s.spawn(WAN, "tinyproxy", "tinyproxy", "-d", "-c", conf)
	if err != nil {
		return err
	}
	s.procs = append(s.procs, p)

	return s.waitProxy(ctx, p)
}

// waitProxy waits until tinyproxy accepts TCP connections from the
// gateway (an allowed client, so the probes log no refusals), or fails
// with its log when it exits or 5 s pass.
func (s *Sandbox) waitProxy(ctx context.Context, p *Process) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()

	for _, ip := range []string{ProxyAddr4, ProxyAddr6} {
		var lastErr error
		check := func() (bool, error) {
			if p.Exited() {
				return false, fmt.Errorf("exited: %s", p.Tail(10))
			}
			lastErr = s.DialTCP(Gateway, Addr(ip, ProxyPort), 200*time.Millisecond)
			return lastErr == nil, nil
		}
		if err := poll(ctx, 10*time.Millisecond, check); err != nil {
			return fmt.Errorf("tinyproxy on %s: %w", ip, errors.Join(err, lastErr))
		}
	}
	return nil
}
