package main

import (
	"fmt"
	"io"
	"os"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // bad flags or an invalid config file
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "load the policy, enforce it and serve metrics until stopped", cmdRun},
		{"reload", "make the running daemon apply its config file again", cmdReload},
		{"validate", "check a config file without touching the kernel", cmdValidate},
		{"status", "show what the kernel enforces and the daemon's DNS, spool and tunnel state", cmdStatus},
		{"explain", "judge a made-up packet with the loaded programs and maps, and say why", cmdExplain},
		{"events", "follow the deny events of the running daemon", cmdEvents},
		{"unload", "remove every program, link, map and pin of Edgeward", cmdUnload},
		{"version", "print the version", cmdVersion},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return exitUsage
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "edgeward: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: edgeward COMMAND [-c FILE] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes -c FILE (default /etc/edgeward/edgeward.yaml).")
}
