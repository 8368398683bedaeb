package config

import (
	"net"
	"net/netip"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// maxSocketPath is the longest path a UNIX socket can bind: sun_path holds
// 108 bytes including the terminating NUL.
const maxSocketPath = 107

// paths decodes the paths section into ps, which holds the defaults.
func (p *parser) paths(n *yaml.Node, ps *Paths) {
	o := p.object(n, "paths", "bpffs", "state", "socket", "cgroup")
	if o == nil {
		return
	}

	if v := o.get("bpffs"); v != nil {
		ps.BPFFS = p.absPath(v, o.path("bpffs"))
	}
	if v := o.get("state"); v != nil {
		ps.State = p.absPath(v, o.path("state"))
	}
	if v := o.get("socket"); v != nil {
		ps.Socket = p.absPath(v, o.path("socket"))
		if len(ps.Socket) > maxSocketPath {
			p.errorAt(v, o.path("socket"), "a UNIX socket path has at most %d bytes, this one has %d",
				maxSocketPath, len(ps.Socket))
		}
	}
	if v := o.get("cgroup"); v != nil {
		ps.Cgroup = p.absPath(v, o.path("cgroup"))
		ps.CgroupAt = Position{Line: v.Line, Column: v.Column}
	}
}

// absPath returns the cleaned absolute path in n, or "" after recording
// an error.
func (p *parser) absPath(n *yaml.Node, field string) string {
	s, ok := p.nonEmpty(n, field)
	if !ok {
		return ""
	}
	if !filepath.IsAbs(s) {
		p.errorAt(n, field, "%q is not an absolute path", s)
		return ""
	}

	return filepath.Clean(s)
}

// metrics decodes the metrics section into m, which holds the defaults.
func (p *parser) metrics(n *yaml.Node, m *Metrics) {
	o := p.object(n, "metrics", "listen")
	if o == nil {
		return
	}

	v := o.get("listen")
	if v == nil {
		return
	}
	if s, ok := p.hostPort(v, o.path("listen")); ok {
		m.Listen = s
	}
}

// hostPort checks "host:port" where host is an IP address, a DNS name, or
// empty (every address); the port is 1-65535.
func (p *parser) hostPort(n *yaml.Node, field string) (string, bool) {
	s, ok := p.nonEmpty(n, field)
	if !ok {
		return "", false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		p.errorAt(n, field, "%q is not host:port, e.g. 127.0.0.1:9470", s)
		return "", false
	}

	num, err := portNumber(port)
	if err != nil {
		p.errorAt(n, field, "%q: %v", s, err)
		return "", false
	}
	if host == "" {
		return s, true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return s, p.claimListen(n, field, netip.AddrPortFrom(a, num))
	}
	if _, err := CanonicalName(host, false); err != nil {
		p.errorAt(n, field, "%q: host is neither an IP address nor a valid name: %v", s, err)
		return "", false
	}

	return s, true
}
