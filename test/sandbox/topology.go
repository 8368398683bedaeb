package sandbox

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// end is one side of a veth pair: its namespace, name and addresses.
type end struct {
	host  Host
	iface string
	addrs []string
}

// veth is a veth pair between two namespaces.
type veth struct{ a, b end }

// route is a static route; dst "default" means the default route of
// the family of via, and an empty via means a route through dev alone.
type route struct {
	host Host
	dst  string
	via  string
	dev  string
}

// veths are the wires of the sandbox (see doc.go).
var veths = []veth{
	{
		end{OT, OTIface, []string{OTAddr4 + "/24", OTAddr6 + "/64"}},
		end{Gateway, GatewayLANIface, []string{GatewayLAN4 + "/24", GatewayLAN6 + "/64"}},
	},
	{
		end{Gateway, GatewayWANIface, []string{GatewayWAN4 + "/24", GatewayWAN6 + "/64"}},
		end{WAN, WANUplinkIface, []string{WANRouter4 + "/24", WANRouter6 + "/64"}},
	},
	{
		end{WAN, WANCloudIface, []string{VPCRouter4 + "/24", VPCRouter6 + "/64"}},
		end{VPC, VPCIface, []string{VPNPeer4 + "/24", VPNPeer6 + "/64"}},
	},
}

// loopbackAddrs are the server addresses, put on lo since this kernel
// has no dummy interfaces.
var loopbackAddrs = map[Host][]string{
	WAN: {
		InternetHost4 + "/32", InternetHost6 + "/128",
		ProxyAddr4 + "/32", ProxyAddr6 + "/128",
		EndpointHost4 + "/32", EndpointHost6 + "/128",
	},
	VPC: {VPCEndpoint4 + "/32", VPCEndpoint6 + "/128"},
}

// staticRoutes are the routes that do not depend on the tunnel.
var staticRoutes = []route{
	{OT, "default", GatewayLAN4, OTIface},
	{OT, "default", GatewayLAN6, OTIface},
	{Gateway, "default", WANRouter4, GatewayWANIface},
	{Gateway, "default", WANRouter6, GatewayWANIface},
	{WAN, LANPrefix4, GatewayWAN4, WANUplinkIface},
	{WAN, LANPrefix6, GatewayWAN6, WANUplinkIface},
	{VPC, "default", VPCRouter4, VPCIface},
	{VPC, "default", VPCRouter6, VPCIface},
}

// baseSysctls apply to every namespace: no duplicate address detection,
// so IPv6 addresses are usable at once.
var baseSysctls = map[string]string{
	"net.ipv6.conf.all.accept_dad":     "0",
	"net.ipv6.conf.default.accept_dad": "0",
}

// routerSysctls apply to the namespaces that forward packets.
var routerSysctls = map[string]string{
	"net.ipv4.ip_forward":              "1",
	"net.ipv6.conf.all.forwarding":     "1",
	"net.ipv6.conf.default.forwarding": "1",
}

// routers are the namespaces that forward packets.
var routers = map[Host]bool{Gateway: true, WAN: true}

// buildTopology sets sysctls, brings lo up, and creates the veths,
// addresses and static routes in the sandbox's namespaces.
func (s *Sandbox) buildTopology(ctx context.Context) error {
	for _, h := range hosts {
		if err := s.prepareHost(h); err != nil {
			return err
		}
	}

	for _, v := range veths {
		if err := s.addVeth(v); err != nil {
			return err
		}
	}

	for _, r := range staticRoutes {
		if err := s.addRoute(r); err != nil {
			return err
		}
	}

	return s.waitAddrsUsable(ctx)
}

// prepareHost sets the namespace's sysctls, brings lo up and puts the
// host's server addresses on lo.
func (s *Sandbox) prepareHost(h Host) error {
	if err := setSysctls(s.ns[h], baseSysctls); err != nil {
		return fmt.Errorf("%s: %w", h, err)
	}
	if routers[h] {
		if err := setSysctls(s.ns[h], routerSysctls); err != nil {
			return fmt.Errorf("%s: %w", h, err)
		}
	}

	lo, err := s.nl[h].LinkByName("lo")
	if err != nil {
		return fmt.Errorf("%s: find lo: %w", h, err)
	}
	if err := s.nl[h].LinkSetUp(lo); err != nil {
		return fmt.Errorf("%s: set lo up: %w", h, err)
	}

	return s.addAddrs(h, lo, loopbackAddrs[h])
}

// addVeth creates a veth pair with each end directly in its namespace,
// then brings both ends up and adds their addresses.
func (s *Sandbox) addVeth(v veth) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = v.a.iface
	link := &netlink.Veth{
		LinkAttrs:     attrs,
		PeerName:      v.b.iface,
		PeerNamespace: netlink.NsFd(int(s.ns[v.b.host])),
	}
	if err := s.nl[v.a.host].LinkAdd(link); err != nil {
		return fmt.Errorf("add veth %s/%s - %s/%s: %w",
			v.a.host, v.a.iface, v.b.host, v.b.iface, err)
	}

	for _, e := range []end{v.a, v.b} {
		if err := s.upWithAddrs(e); err != nil {
			return err
		}
	}
	return nil
}

// upWithAddrs brings one veth end up and adds its addresses.
func (s *Sandbox) upWithAddrs(e end) error {
	link, err := s.nl[e.host].LinkByName(e.iface)
	if err != nil {
		return fmt.Errorf("%s: find %s: %w", e.host, e.iface, err)
	}

	if err := s.nl[e.host].LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: set %s up: %w", e.host, e.iface, err)
	}
	return s.addAddrs(e.host, link, e.addrs)
}

// addAddrs adds addresses (CIDR notation) to a link, IPv6 ones without
// duplicate address detection. An address already there is kept.
func (s *Sandbox) addAddrs(h Host, link netlink.Link, cidrs []string) error {
	for _, cidr := range cidrs {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			return fmt.Errorf("%s: parse address %s: %w", h, cidr, err)
		}
		if addr.IP.To4() == nil {
			addr.Flags = unix.IFA_F_NODAD
		}

		if err := s.nl[h].AddrReplace(link, addr); err != nil {
			return fmt.Errorf("%s: add %s to %s: %w",
				h, cidr, link.Attrs().Name, err)
		}
	}
	return nil
}

// addRoute adds or replaces a static route.
func (s *Sandbox) addRoute(r route) error {
	link, err := s.nl[r.host].LinkByName(r.dev)
	if err != nil {
		return fmt.Errorf("%s: route %s: find %s: %w", r.host, r.dst, r.dev, err)
	}

	nr := &netlink.Route{LinkIndex: link.Attrs().Index}
	if r.dst != "default" {
		_, nr.Dst, err = net.ParseCIDR(r.dst)
		if err != nil {
			return fmt.Errorf("%s: route %s: %w", r.host, r.dst, err)
		}
	}
	if r.via != "" {
		nr.Gw = net.ParseIP(r.via)
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}

	if err := s.nl[r.host].RouteReplace(nr); err != nil {
		return fmt.Errorf("%s: route %s via %q dev %s: %w",
			r.host, r.dst, r.via, r.dev, err)
	}
	return nil
}

// waitAddrsUsable waits until every veth reports operational state up
// (the kernel updates it lazily, up to a second after the carrier) and
// no IPv6 address is tentative (with DAD off this holds at once; the
// wait guards against a kernel that ignores the setting). It gives up
// after 3 s.
func (s *Sandbox) waitAddrsUsable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()

	for _, v := range veths {
		for _, e := range []end{v.a, v.b} {
			check := func() (bool, error) { return s.operUp(e) }
			if err := poll(ctx, 20*time.Millisecond, check); err != nil {
				return fmt.Errorf("%s: wait for %s to be up: %w", e.host, e.iface, err)
			}
		}
	}

	for _, h := range hosts {
		check := func() (bool, error) { return s.addrsSettled(h) }
		if err := poll(ctx, 20*time.Millisecond, check); err != nil {
			return fmt.Errorf("%s: wait for IPv6 addresses: %w", h, err)
		}
	}
	return nil
}

// operUp reports whether a veth end's operational state is up.
func (s *Sandbox) operUp(e end) (bool, error) {
	link, err := s.nl[e.host].LinkByName(e.iface)
	if err != nil {
		return false, fmt.Errorf("find %s: %w", e.iface, err)
	}
	return link.Attrs().OperState == netlink.OperUp, nil
}

// addrsSettled reports whether every IPv6 address of host h is usable.
func (s *Sandbox) addrsSettled(h Host) (bool, error) {
	addrs, err := s.nl[h].AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		return false, fmt.Errorf("list addresses: %w", err)
	}

	for _, a := range addrs {
		if a.Flags&unix.IFA_F_DADFAILED != 0 {
			return false, fmt.Errorf("duplicate address %s", a.IP)
		}
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			return false, nil
		}
	}
	return true, nil
}

// poll calls check every interval until it reports done, fails, or ctx
// ends; then it returns check's error or ctx's.
func poll(ctx context.Context, interval time.Duration, check func() (bool, error)) error {
	for {
		done, err := check()
		if done || err != nil {
			return err
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
