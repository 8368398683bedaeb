package main

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/loader"
)

// seedFlows hands the data plane the connections that connection tracking
// knows from before enforcement started and that the policy allows, so
// their replies are not cut. Without connection tracking in this network
// namespace there is nothing to seed; the gateway's own connections are
// then still adopted by their sockets (see bpf/edgeward.c, ew_adopt).
func (d *daemon) seedFlows() {
	var seeds []loader.SeedFlow
	for _, family := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, family)
		if err != nil {
			d.log.Warn("read connection tracking; open connections may be cut", "err", err)
			return
		}
		for _, f := range flows {
			if s, ok := seedFrom(f); ok && allowedByPolicy(d.cfg, s) {
				seeds = append(seeds, s)
			}
		}
	}
	n, err := d.loader.SeedFlows(seeds)
	if err != nil {
		d.log.Warn("record open connections", "err", err)
	}
	if n > 0 {
		d.log.Info("recorded connections open before enforcement", "flows", n)
	}
}

// seedFrom reads a tracked connection as it leaves: the reply tuple,
// reversed, is what the uplink sees after any NAT.
func seedFrom(f *netlink.ConntrackFlow) (loader.SeedFlow, bool) {
	proto := config.Proto(f.Forward.Protocol)
	if proto != config.ProtoTCP && proto != config.ProtoUDP {
		return loader.SeedFlow{}, false
	}
	local, ok1 := addrPort(f.Reverse.DstIP, f.Reverse.DstPort)
	remote, ok2 := addrPort(f.Reverse.SrcIP, f.Reverse.SrcPort)
	return loader.SeedFlow{Proto: proto, Local: local, Remote: remote}, ok1 && ok2
}

func addrPort(ip net.IP, port uint16) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), port), ok
}

// allowedByPolicy tells whether egress would let the flow out: its remote
// side is an endpoint with the flow's protocol and port, or the proxy.
func allowedByPolicy(cfg *config.Config, s loader.SeedFlow) bool {
	if cfg.Proxy != nil && s.Proto == config.ProtoTCP && cfg.Proxy.Address == s.Remote {
		return true
	}
	for _, ep := range cfg.Endpoints {
		if !inPrefixes(ep.To, s.Remote.Addr()) {
			continue
		}
		for _, pr := range ep.Ports {
			if pr.Contains(s.Proto, s.Remote.Port()) {
				return true
			}
		}
	}
	return false
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
