package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wgSocketDir holds wireguard-go's control sockets. It is shared by all
// namespaces, which is why interface names carry the sandbox id.
const wgSocketDir = "/var/run/wireguard"

// tunnelWait bounds how long Start and SetTunnelDown wait for the tunnel.
const tunnelWait = 10 * time.Second

// wgGatewayName is the gateway's WireGuard interface: "wg" + id, so the
// enforcer's VPN pattern "wg*" matches it.
func wgGatewayName(id string) string { return "wg" + id }

// wgVPCName is the cloud side's WireGuard interface.
func wgVPCName(id string) string { return "wv" + id }

// wgSocket is the control socket wireguard-go creates for an interface.
func wgSocket(iface string) string {
	return filepath.Join(wgSocketDir, iface+".sock")
}

// tunnelEnd is one side of the tunnel: its interface, addresses, peer
// settings and the routes into the tunnel.
type tunnelEnd struct {
	host       Host
	iface      string
	addrs      []string
	listenPort int
	allowed    []string
	endpoint   string
	keepalive  int
	routes     []string
}

// tunnelEnds returns the cloud side first, so it is ready by the time the
// gateway starts its handshake.
func (s *Sandbox) tunnelEnds() []tunnelEnd {
	return []tunnelEnd{
		{
			host:       VPC,
			iface:      s.wgVPC,
			addrs:      []string{TunnelVPC4 + "/24", TunnelVPC6 + "/64"},
			listenPort: WireGuardPort,
			allowed:    []string{LANPrefix4, TunnelPrefix4, LANPrefix6, TunnelPrefix6},
			routes:     []string{LANPrefix4, LANPrefix6},
		},
		{
			host:      Gateway,
			iface:     s.wgGateway,
			addrs:     []string{TunnelGateway4 + "/24", TunnelGateway6 + "/64"},
			allowed:   []string{VPCPrefix4, TunnelPrefix4, VPCPrefix6, TunnelPrefix6},
			endpoint:  Addr(VPNPeer4, WireGuardPort),
			keepalive: 1,
			routes:    []string{VPCPrefix4, VPCPrefix6},
		},
	}
}

// WireGuard returns the names of the gateway's and the cloud side's
// WireGuard interfaces ("wg"+ID and "wv"+ID), or empty names when the
// sandbox runs without WireGuard.
func (s *Sandbox) WireGuard() (gwIface, vpcIface string) {
	if s.opts.WithoutWireGuard {
		return "", ""
	}
	return s.wgGateway, s.wgVPC
}

// startWireGuard runs wireguard-go on both sides, configures keys, peers,
// addresses and routes, and waits until the tunnel carries traffic.
func (s *Sandbox) startWireGuard(ctx context.Context) error {
	ends := s.tunnelEnds()
	keys := make([]wgKey, len(ends))
	for i, e := range ends {
		k, err := s.newWGKey(ctx, e.iface)
		if err != nil {
			return err
		}
		keys[i] = k
	}

	for _, e := range ends {
		if err := s.runWireGuardGo(ctx, e); err != nil {
			return err
		}
	}

	// Each end's peer is the other end: with two ends, index 1-i.
	for i, e := range ends {
		peer := keys[1-i].public
		if err := s.setPeer(ctx, e, keys[i].file, peer); err != nil {
			return err
		}
		if err := s.configureTunnelLink(e); err != nil {
			return err
		}
	}

	return s.waitTunnel(ctx)
}

// wgKey is a WireGuard key pair: the private key in a file, the public
// key in base64.
type wgKey struct {
	file   string
	public string
}

// newWGKey makes a key pair with `wg genkey` and `wg pubkey` and writes
// the private key to Dir/<iface>.key.
func (s *Sandbox) newWGKey(ctx context.Context, iface string) (wgKey, error) {
	private, err := output(ctx, "wg", "genkey")
	if err != nil {
		return wgKey{}, fmt.Errorf("wireguard key for %s: %w", iface, err)
	}

	cmd := exec.CommandContext(ctx, "wg", "pubkey")
	cmd.Stdin = strings.NewReader(private)
	public, err := cmd.Output()
	if err != nil {
		return wgKey{}, fmt.Errorf("wireguard public key for %s: %w", iface, err)
	}

	file := filepath.Join(s.Dir, iface+".key")
	if err := os.WriteFile(file, []byte(private), 0o600); err != nil {
		return wgKey{}, fmt.Errorf("write wireguard key: %w", err)
	}
	return wgKey{file: file, public: strings.TrimSpace(string(public))}, nil
}

// runWireGuardGo starts `wireguard-go -f IFACE` in the end's namespace
// and waits up to 5 s for its control socket.
func (s *Sandbox) runWireGuardGo(ctx context.Context, e tunnelEnd) error {
	p, err := s.spawn(e.host, e.iface, "wireguard-go", "-f", e.iface)
	if err != nil {
		return err
	}
	s.procs = append(s.procs, p)

	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	check := func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("exited: %s", p.Tail(10))
		}
		_, err := os.Stat(wgSocket(e.iface))
		return err == nil, nil
	}
	if err := poll(ctx, 10*time.Millisecond, check); err != nil {
		return fmt.Errorf("wireguard-go %s in %s: %w", e.iface, e.host, err)
	}
	return nil
}

// setPeer gives one end its private key, listen port and peer with
// `wg set`.
func (s *Sandbox) setPeer(ctx context.Context, e tunnelEnd, keyFile, peer string) error {
	args := []string{"netns", "exec", s.NetNS(e.host), "wg", "set", e.iface,
		"private-key", keyFile}
	if e.listenPort != 0 {
		args = append(args, "listen-port", strconv.Itoa(e.listenPort))
	}

	args = append(args, "peer", peer, "allowed-ips", strings.Join(e.allowed, ","))
	if e.endpoint != "" {
		args = append(args, "endpoint", e.endpoint)
	}
	if e.keepalive != 0 {
		args = append(args, "persistent-keepalive", strconv.Itoa(e.keepalive))
	}

	if err := run(ctx, "ip", args...); err != nil {
		return fmt.Errorf("configure wireguard %s: %w", e.iface, err)
	}
	return nil
}

// configureTunnelLink brings a tunnel interface up and (re)adds its
// addresses and routes: the kernel drops IPv6 addresses and all routes of
// an interface that goes down.
func (s *Sandbox) configureTunnelLink(e tunnelEnd) error {
	link, err := s.nl[e.host].LinkByName(e.iface)
	if err != nil {
		return fmt.Errorf("%s: find %s: %w", e.host, e.iface, err)
	}
	if err := s.nl[e.host].LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: set %s up: %w", e.host, e.iface, err)
	}

	if err := s.addAddrs(e.host, link, e.addrs); err != nil {
		return err
	}
	for _, dst := range e.routes {
		if err := s.addRoute(route{host: e.host, dst: dst, dev: e.iface}); err != nil {
			return err
		}
	}
	return nil
}

// waitTunnel waits until the gateway reaches the VPC endpoint's HTTPS
// port over IPv4 and IPv6, which only the tunnel can carry. It gives up
// after 10 s with the last dial error.
func (s *Sandbox) waitTunnel(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, tunnelWait)
	defer cancel()

	targets := []string{Addr(VPCEndpoint4, HTTPSPort), Addr(VPCEndpoint6, HTTPSPort)}
	for _, target := range targets {
		var lastErr error
		check := func() (bool, error) {
			lastErr = s.DialTCP(Gateway, target, 500*time.Millisecond)
			return lastErr == nil, nil
		}
		if err := poll(ctx, 50*time.Millisecond, check); err != nil {
			return fmt.Errorf("tunnel to %s: %w", target, errors.Join(err, lastErr))
		}
	}
	return nil
}

// SetTunnelDown sets the gateway's WireGuard interface down or up, like
// `ip link set wgXXXX down|up`. Up restores the addresses and routes the
// kernel dropped and waits up to 10 s until the tunnel carries traffic
// again. It fails on a sandbox without WireGuard.
func (s *Sandbox) SetTunnelDown(down bool) error {
	if s.opts.WithoutWireGuard {
		return errors.New("set tunnel state: sandbox runs without wireguard")
	}
	gw := s.tunnelEnds()[1]

	if !down {
		if err := s.configureTunnelLink(gw); err != nil {
			return fmt.Errorf("set tunnel up: %w", err)
		}
		return s.waitTunnel(context.Background())
	}

	link, err := s.nl[Gateway].LinkByName(gw.iface)
	if err != nil {
		return fmt.Errorf("set tunnel down: find %s: %w", gw.iface, err)
	}
	if err := s.nl[Gateway].LinkSetDown(link); err != nil {
		return fmt.Errorf("set tunnel down: %w", err)
	}
	return nil
}

// removeWGSockets removes control sockets that wireguard-go left behind
// (it removes them itself when it exits cleanly).
func (s *Sandbox) removeWGSockets() error {
	var errs []error
	for _, iface := range []string{s.wgGateway, s.wgVPC} {
		if iface == "" {
			continue
		}
		err := os.Remove(wgSocket(iface))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove wireguard socket: %w", err))
		}
	}
	return errors.Join(errs...)
}
