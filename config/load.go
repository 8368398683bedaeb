package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// maxFileSize bounds what Load reads, so that pointing -c at a device or a
// huge file fails quickly instead of eating the gateway's memory.
const maxFileSize = 1 << 20

// Load reads the config file at path and parses it with Parse.
//
// A file that cannot be read gives a wrapped error (errors.Is works with
// fs.ErrNotExist); a file larger than 1 MiB is refused; problems in the
// content give an ErrorList.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()

	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("read config %s: larger than %d bytes", path, maxFileSize)
	}

	return Parse(path, data)
}

// Parse decodes and validates a config file; file names it in errors and
// in Config.File. Parse does not touch the file system or the network.
//
// On any problem Parse returns a nil Config and an ErrorList holding every
// problem it found, each with file, line, column and field.
func Parse(file string, data []byte) (*Config, error) {
	p := &parser{file: file}

	root := p.document(data)
	if root == nil {
		return nil, p.errs
	}

	p.rejectAliases(root)
	cfg := defaults(file)
	p.config(root, cfg)
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}

	return cfg, nil
}

// yamlLine finds the line in the errors of the YAML library, which only
// reports it inside the message.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes the single YAML document in data and returns its root
// node, or nil after recording a syntax error or an empty file.
func (p *parser) document(data []byte) *yaml.Node {
	if !p.checkText(data) {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))

	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) || (err == nil && len(doc.Content) == 0) {
		p.errs = append(p.errs, &Error{File: p.file, Msg: "file is empty: no YAML document"})
		return nil
	}
	if err != nil {
		p.syntax(err)
		return nil
	}

	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		p.errs = append(p.errs, &Error{
			File: p.file, Line: next.Line, Column: next.Column,
			Msg: "more than one YAML document (---); put the whole config in one",
		})
		if err != nil {
			p.syntax(err)
		}
		return nil
	}

	return doc.Content[0]
}

// parserProblems are the messages of the YAML library's parser (as
// opposed to its scanner). For these it reports a 0-based line, one less
// than the line the problem is on, and no line at all for the first line;
// syntax corrects both. The test of syntax_error.yaml catches a library
// update that changes this.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// checkText refuses bytes that YAML does not allow, with their position;
// the YAML library reports them without one.
func (p *parser) checkText(data []byte) bool {
	line, col := 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		msg := ""
		switch {
		case r == utf8.RuneError && size == 1:
			msg = "the file is not valid UTF-8"
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f, r >= 0x80 && r < 0xa0 && r != 0x85:
			msg = fmt.Sprintf("control character %U is not allowed in YAML", r)
		}
		if msg != "" {
			p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, Msg: msg})
			return false
		}

		col++
		if r == '\n' {
			line, col = line+1, 1
		}
		data = data[size:]
	}
	return true
}

// syntax records an error of the YAML library with the line it reports,
// corrected to be 1-based where the library is off by one.
func (p *parser) syntax(err error) {
	e := &Error{File: p.file, Msg: "yaml syntax: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	m := yamlLine.FindStringSubmatch(err.Error())
	switch {
	case m == nil:
		e.Line = 1 // the library leaves out line 1 (its line 0)
	case parserProblems[m[2]]:
		e.Line, _ = strconv.Atoi(m[1])
		e.Line++
		e.Msg = "yaml syntax: " + m[2]
	default:
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = "yaml syntax: " + m[2]
	}

	p.errs = append(p.errs, e)
}

// config decodes the top level into cfg.
func (p *parser) config(n *yaml.Node, cfg *Config) {
	o := p.object(n, "", "mode", "interfaces", "endpoints", "proxy", "dns",
		"spool", "metrics", "paths")
	if o == nil {
		return
	}

	if v := o.get("mode"); v != nil {
		cfg.Mode = Mode(p.enum(v, "mode", string(ModeEnforce), string(ModeAudit)))
	}
	p.interfaces(o.get("interfaces"), &cfg.Interfaces)
	cfg.Endpoints = p.endpoints(o.get("endpoints"))
	cfg.Proxy = p.proxy(o.get("proxy"))
	p.dns(o.get("dns"), &cfg.DNS)
	p.paths(o.get("paths"), &cfg.Paths)
	p.spool(o.get("spool"), &cfg.Spool)
	p.metrics(o.get("metrics"), &cfg.Metrics)

	if cfg.Spool.Dir == "" {
		cfg.Spool.Dir = filepath.Join(cfg.Paths.State, "spool")
	}
}
