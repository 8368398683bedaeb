// Package demopolicy renders the policy of the sandbox demo, which the
// integration tests and the data-plane corpus test use as well.
package demopolicy

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/edgeward/edgeward/config"
)

//go:embed demo.yaml.tmpl
var demoTemplate string

// Params fill in the parts of the demo policy that differ per run.
type Params struct {
	BPFFS string // pin directory, on a bpffs outside /sys
	Dir   string // the sandbox's folder, for state and socket
	// Cgroup is paths.cgroup, the cgroup the socket guard covers: one the
	// caller created (test/sandbox makes one per sandbox). Render refuses
	// to leave it out, since the default is every process of the machine.
	Cgroup string
	Mode   config.Mode // enforce or audit; empty means enforce
	// WithoutVPNPeer leaves out the endpoint that lets the tunnel's own
	// UDP transport leave: the tunnel must then stop.
	WithoutVPNPeer bool
	// Extra endpoints after the demo's own.
	Extra []Endpoint
	// LANServices replaces the demo's [tcp/22].
	LANServices []string
	// Ignore lists interfaces never to touch.
	Ignore []string
	// ExtraYAML is appended to the file as it is (a spool: section).
	ExtraYAML string
	// TTLMin and TTLMax bound learned lifetimes; default 60s and 1h.
	TTLMin, TTLMax string
	// Transparent turns on the DNS guard's transparent mode, with a queue
	// of QueueLength packets (default 1024).
	Transparent bool
	QueueLength int
	// WithoutDNS leaves the dns section out: no guard at all.
	WithoutDNS bool
}

// Endpoint is one more endpoint, written as in the file.
type Endpoint struct {
	Name  string
	To    []string // CIDRs
	Ports []string // port sets such as tcp/443
}

// Render returns the demo policy as YAML. It fails without p.Cgroup.
func Render(p Params) ([]byte, error) {
	if p.Cgroup == "" {
		return nil, errors.New("render demo policy: Params.Cgroup is empty: the default of paths.cgroup is the root of the cgroup hierarchy, and a test must guard only a cgroup it made")
	}
	if p.Mode == "" {
		p.Mode = config.ModeEnforce
	}
	if p.TTLMin == "" {
		p.TTLMin, p.TTLMax = "60s", "1h"
	}
	if p.LANServices == nil {
		p.LANServices = []string{"tcp/22"}
	}
	funcs := template.FuncMap{"join": joinQuoted}
	tmpl, err := template.New("demo.yaml").Funcs(funcs).Parse(demoTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse demo policy template: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, p); err != nil {
		return nil, fmt.Errorf("render demo policy: %w", err)
	}
	return buf.Bytes(), nil
}

// Write renders the policy into dir/edgeward.yaml, parses it back as the
// daemon would, and returns the file's path and the parsed config.
func Write(dir string, p Params) (string, *config.Config, error) {
	data, err := Render(p)
	if err != nil {
		return "", nil, err
	}
	// Written aside and renamed into place, as an operator's editor does:
	// a reader (a reload, explain) never sees half a file.
	path := filepath.Join(dir, "edgeward.yaml")
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		return "", nil, fmt.Errorf("write demo policy: %w", err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		return "", nil, fmt.Errorf("write demo policy: %w", err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return "", nil, err
	}
	return path, cfg, nil
}

// joinQuoted writes a YAML flow list's items, each quoted.
func joinQuoted(items []string) string {
	quoted := make([]string, len(items))
	for i, it := range items {
		quoted[i] = strconv.Quote(it)
	}
	return strings.Join(quoted, ", ")
}
