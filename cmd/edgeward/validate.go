package main

import (
	"fmt"
	"io"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/loader"
)

// cmdValidate checks a config file, and that paths.cgroup is a cgroup v2
// directory here, and touches nothing else.
func cmdValidate(args []string, stdout, stderr io.Writer) int {
	f := newFlags("validate", stderr)
	if status, ok := f.parse(args); !ok {
		return status
	}

	cfg, p, ok := f.loadPolicy(stderr)
	if !ok {
		return exitUsage
	}
	guard, off, ok := guardCgroup(cfg, stderr)
	if !ok {
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: valid: mode %s, %d endpoints (%d of %d policy entries), proxy %s\n",
		cfg.File, cfg.Mode, len(cfg.Endpoints), p.Entries(), loader.MaxRules, proxyString(cfg))
	if off != nil {
		fmt.Fprintf(stdout, "warning: the socket guard would be off: %v\n", off)
	} else {
		fmt.Fprintf(stdout, "socket guard: cgroup %s\n", guard)
	}
	return exitOK
}

func proxyString(cfg *config.Config) string {
	if cfg.Proxy == nil {
		return "none"
	}
	return cfg.Proxy.Address.String()
}
