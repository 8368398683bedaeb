package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/loader"
)

// commandFlags is a flag set with the -c flag every command takes.
type commandFlags struct {
	*flag.FlagSet
	configPath string
}

func newFlags(name string, stderr io.Writer) *commandFlags {
	f := &commandFlags{FlagSet: flag.NewFlagSet("edgeward "+name, flag.ContinueOnError)}
	f.SetOutput(stderr)
	f.StringVar(&f.configPath, "c", config.DefaultPath, "config `FILE`")
	return f
}

// parse parses args; ok is false when the command must stop with status.
func (f *commandFlags) parse(args []string) (status int, ok bool) {
	if err := f.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK, false
		}
		return exitUsage, false
	}
	if f.NArg() > 0 {
		fmt.Fprintf(f.Output(), "%s: unexpected argument %q\n", f.Name(), f.Arg(0))
		return exitUsage, false
	}
	return exitOK, true
}

// loadConfig loads the config named by -c and prints every problem it has.
func (f *commandFlags) loadConfig(stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(f.configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	return cfg, true
}

// loadPolicy loads the config and compiles its policy, without touching
// the kernel, and prints what keeps the policy from fitting the data
// plane.
func (f *commandFlags) loadPolicy(stderr io.Writer) (*config.Config, *loader.Policy, bool) {
	cfg, ok := f.loadConfig(stderr)
	if !ok {
		return nil, nil, false
	}
	p, err := loader.Compile(cfg, 0)
	if err != nil {
		fmt.Fprintf(stderr, "%s: endpoints: %v\n", cfg.File, err)
		return nil, nil, false
	}
	return cfg, p, true
}

// guardCgroup resolves paths.cgroup on this machine, touching no kernel
// object. ok is false when the file names a directory that is no cgroup
// v2 directory; the problem is printed with file, line and field. off
// says why the socket guard must stay off (no cgroup v2 hierarchy when
// the file leaves the key out), or is nil.
func guardCgroup(cfg *config.Config, stderr io.Writer) (dir string, off error, ok bool) {
	dir, err := cfg.GuardCgroup()
	var list config.ErrorList
	switch {
	case errors.As(err, &list):
		fmt.Fprintln(stderr, err)
		return "", nil, false
	case err != nil:
		return "", err, true
	}
	return dir, nil, true
}

// writeJSON prints v as indented JSON, for the -json flag of commands.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
