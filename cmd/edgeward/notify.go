package main

import (
	"fmt"
	"net"
	"os"
)

// sdNotify sends state (such as "READY=1") to the service manager when the
// daemon runs as a systemd service of Type=notify, which sets
// NOTIFY_SOCKET; without it, sdNotify does nothing. A name starting with
// "@" is an abstract socket. An error means the manager did not get the
// message: a unit of Type=notify then kills the daemon once
// TimeoutStartSec has passed, so the caller should log it.
func sdNotify(state string) error {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify service manager at %s: %w", socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify service manager at %s: %w", socket, err)
	}
	return nil
}

// notify passes state to sdNotify and logs when it fails.
func (d *daemon) notify(state string) {
	if err := sdNotify(state); err != nil {
		d.log.Warn("service manager not told", "state", state, "err", err)
	}
}
