package main

import (
	"fmt"
	"io"
	"runtime"
)

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	f := newFlags("version", stderr)
	if status, ok := f.parse(args); !ok {
		return status
	}
	fmt.Fprintf(stdout, "edgeward %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
