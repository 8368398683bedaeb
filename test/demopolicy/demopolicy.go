// Package demopolicy renders the policy of the sandbox demo, which the
// integration tests and the data-plane corpus test use as well.
package demopolicy

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"text/template"

	"github.com/edgeward/edgeward/config"
)

//go:embed demo.yaml.tmpl
var demoTemplate string

// Params fill in the parts of the demo policy that differ per run.
type Params struct {
	BPFFS string      // pin directory, on a bpffs outside /sys
	Dir   string      // the sandbox's folder, for state and socket
	Mode  config.Mode // enforce or audit; empty means enforce
	// WithoutVPNPeer leaves out the endpoint that lets the tunnel's own
	// UDP transport leave: the tunnel must then stop.
	WithoutVPNPeer bool
}

// Render returns the demo policy as YAML.
func Render(p Params) ([]byte, error) {
	if p.Mode == "" {
		p.Mode = config.ModeEnforce
	}
	tmpl, err := template.New("demo.yaml").Parse(demoTemplate)
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
	path := filepath.Join(dir, "edgeward.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", nil, fmt.Errorf("write demo policy: %w", err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return "", nil, err
	}
	return path, cfg, nil
}
