package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenNotify opens a datagram socket like the one systemd passes in
// NOTIFY_SOCKET and returns it with the name to put there.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 256)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no message on the notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestSDNotifySends(t *testing.T) {
	for name, socket := range map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify"),
		"abstract": fmt.Sprintf("@edgeward-notify-test-%d", os.Getpid()),
	} {
		t.Run(name, func(t *testing.T) {
			conn := listenNotify(t, socket)
			t.Setenv("NOTIFY_SOCKET", socket)

			if err := sdNotify("READY=1"); err != nil {
				t.Fatal(err)
			}
			if got := readNotify(t, conn); got != "READY=1" {
				t.Errorf("got %q, want READY=1", got)
			}
		})
	}
}

func TestSDNotifyWithoutSocketDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v, want nil", err)
	}
}

func TestSDNotifyReportsMissingSocket(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	t.Setenv("NOTIFY_SOCKET", missing)
	err := sdNotify("READY=1")
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("got %v, want an error naming %s", err, missing)
	}
}
