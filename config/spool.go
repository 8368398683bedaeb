package config

import (
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxTopic is the longest MQTT topic name in bytes.
const maxTopic = 65535

// spool decodes the spool section into s, which holds the defaults.
func (p *parser) spool(n *yaml.Node, s *Spool) {
	o := p.object(n, "spool", "dir", "listen", "max_bytes", "max_age", "when_full", "token_file", "forward")
	if o == nil {
		return
	}

	if v := o.get("dir"); v != nil {
		s.Dir = p.absPath(v, o.path("dir"))
	}
	s.Listen = p.listen(o.get("listen"), o.path("listen"))
	if v := o.get("max_bytes"); v != nil {
		s.MaxBytes, _ = p.size(v, o.path("max_bytes"))
	}
	if v := o.get("max_age"); v != nil {
		s.MaxAge, _ = p.duration(v, o.path("max_age"))
	}
	if v := o.get("when_full"); v != nil {
		s.WhenFull = p.enum(v, o.path("when_full"), "drop_oldest", "reject")
	}
	if v := o.get("token_file"); v != nil {
		s.TokenFile = p.absPath(v, o.path("token_file"))
	}
	s.Forward = p.forward(o.get("forward"), o.path("forward"))
}

// forward decodes spool.forward; nil when absent.
func (p *parser) forward(n *yaml.Node, field string) *Forward {
	if n == nil || isNull(n) {
		return nil
	}
	o := p.object(n, field, "url", "topic", "proxy", "tls")
	if o == nil {
		return nil
	}

	f := &Forward{}
	var scheme string
	if v := p.require(o, "url"); v != nil {
		f.URL, scheme = p.forwardURL(v, o.path("url"))
	}
	if v := o.get("topic"); v != nil {
		f.Topic = p.topic(v, o.path("topic"))
	} else if scheme == "mqtts" {
		p.require(o, "topic")
	}
	if v := o.get("proxy"); v != nil {
		f.Proxy = p.proxyURL(v, o.path("proxy"))
	}
	p.tls(o.get("tls"), o.path("tls"), &f.TLS)

	return f
}

// forwardURL checks the upstream URL and returns it with its lower-case
// scheme. Only encrypted transports are accepted.
func (p *parser) forwardURL(n *yaml.Node, field string) (string, string) {
	s, ok := p.nonEmpty(n, field)
	if !ok {
		return "", ""
	}
	u, err := url.Parse(s)
	if err != nil {
		p.errorAt(n, field, "%q is not a URL", s)
		return "", ""
	}

	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "mqtt" || scheme == "http":
		p.errorAt(n, field, "%s:// would send telemetry unencrypted; use mqtts:// or https://", scheme)
	case scheme != "mqtts" && scheme != "https":
		p.errorAt(n, field, "%q: scheme must be mqtts or https", s)
	case u.Host == "" || u.Hostname() == "":
		p.errorAt(n, field, "%q has no host", s)
	case !validURLPort(u):
		p.errorAt(n, field, "%q: port must be 1-65535", s)
	case scheme == "mqtts" && (strings.Trim(u.Path, "/") != "" || u.RawQuery != ""):
		p.errorAt(n, field, "%q: an mqtts URL has no path or query; put the topic in forward.topic", s)
	case u.Fragment != "":
		p.errorAt(n, field, "%q: a fragment (#...) has no meaning here", s)
	default:
		return s, scheme
	}

	return "", scheme
}

// validURLPort reports whether u has no port or a port 1-65535.
func validURLPort(u *url.URL) bool {
	if u.Port() == "" {
		return !strings.HasSuffix(u.Host, ":")
	}
	_, err := portNumber(u.Port())
	return err == nil
}

// topic checks an MQTT topic to publish to: no wildcards, no NUL, and no
// placeholder but {stream}.
func (p *parser) topic(n *yaml.Node, field string) string {
	s, ok := p.nonEmpty(n, field)
	if !ok {
		return ""
	}

	rest := strings.ReplaceAll(s, "{stream}", "")
	switch {
	case len(s) > maxTopic:
		p.errorAt(n, field, "topic is longer than %d bytes", maxTopic)
	case strings.ContainsAny(s, "+#"):
		p.errorAt(n, field, "%q: '+' and '#' are subscription wildcards and cannot be published to", s)
	case strings.ContainsRune(s, 0):
		p.errorAt(n, field, "topic holds a NUL character")
	case strings.ContainsAny(rest, "{}"):
		p.errorAt(n, field, "%q: the only placeholder is {stream}", s)
	default:
		return s
	}

	return ""
}

// proxyURL checks the HTTP CONNECT proxy of the forwarder: http://host:port.
func (p *parser) proxyURL(n *yaml.Node, field string) string {
	s, ok := p.nonEmpty(n, field)
	if !ok {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		p.errorAt(n, field, "%q is not a URL", s)
		return ""
	}

	switch {
	case strings.ToLower(u.Scheme) != "http":
		p.errorAt(n, field, "%q: the proxy must be an http:// URL (the CONNECT tunnel carries the TLS)", s)
	case u.Hostname() == "":
		p.errorAt(n, field, "%q has no host", s)
	case u.Port() == "":
		p.errorAt(n, field, "%q has no port; write it out, e.g. http://192.0.2.10:3128", s)
	case !validURLPort(u):
		p.errorAt(n, field, "%q: port must be 1-65535", s)
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "":
		p.errorAt(n, field, "%q: a proxy URL has no path, query or fragment", s)
	default:
		return s
	}

	return ""
}

// tls decodes forward.tls into t.
func (p *parser) tls(n *yaml.Node, field string, t *TLS) {
	o := p.object(n, field, "ca", "cert", "key")
	if o == nil {
		return
	}

	if v := o.get("ca"); v != nil {
		t.CA = p.absPath(v, o.path("ca"))
	}
	if v := o.get("cert"); v != nil {
		t.Cert = p.absPath(v, o.path("cert"))
	}
	if v := o.get("key"); v != nil {
		t.Key = p.absPath(v, o.path("key"))
	}

	switch {
	case o.get("cert") != nil && o.get("key") == nil:
		p.errorAt(o.get("cert"), o.path("key"), "cert is set without key; give both or neither")
	case o.get("key") != nil && o.get("cert") == nil:
		p.errorAt(o.get("key"), o.path("cert"), "key is set without cert; give both or neither")
	}
}
