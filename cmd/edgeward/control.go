package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The control socket: HTTP on a UNIX socket at paths.socket, for commands
// that need the running daemon (reload, events, status, unload). Only
// root can connect (0600).

// reloadResult is the answer to POST /v1/reload.
type reloadResult struct {
	Generation uint32 `json:"generation,omitempty"`
	Error      string `json:"error,omitempty"`
}

// listenControl creates the control socket, replacing a stale one. It
// refuses to take over a socket another daemon still answers on.
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create control socket directory: %w", err)
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("control socket %s: another edgeward is running", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}

	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict control socket: %w", err)
	}
	return ln, nil
}

// serveControl answers on the control socket until ln is closed.
func (d *daemon) serveControl(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		gen, err := d.reload()
		res := reloadResult{Generation: gen}
		status := http.StatusOK
		if err != nil {
			res.Error, status = err.Error(), http.StatusUnprocessableEntity
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(res)
	})

	mux.HandleFunc("GET /v1/events", d.events.serveEvents)
	mux.HandleFunc("GET /v1/status", d.serveStatus)
	mux.HandleFunc("POST /v1/stop", func(w http.ResponseWriter, r *http.Request) {
		d.log.Info("asked to stop over the control socket")
		w.WriteHeader(http.StatusNoContent)
		d.stop()
	})

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		d.log.Error("control socket stopped", "err", err)
	}
}

// controlClient talks HTTP to the daemon's control socket.
func controlClient(socket string) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
}

// daemonUnreachable explains a failed request to the control socket: the
// daemon is not running, or runs with another paths.socket.
func daemonUnreachable(stderr io.Writer, cmd, socket string, err error) {
	fmt.Fprintf(stderr, "edgeward %s: no daemon answers on %s (%v); start it with edgeward run, "+
		"or pass -c with the config file it runs with\n", cmd, socket, err)
}

// cmdReload asks the running daemon to apply its config file again.
func cmdReload(args []string, stdout, stderr io.Writer) int {
	f := newFlags("reload", stderr)
	if status, ok := f.parse(args); !ok {
		return status
	}
	cfg, ok := f.loadConfig(stderr)
	if !ok {
		fmt.Fprintln(stderr, "edgeward reload: not sent to the daemon; the running policy is unchanged")
		return exitUsage
	}

	resp, err := controlClient(cfg.Paths.Socket).Post("http://edgeward/v1/reload", "application/json", nil)
	if err != nil {
		daemonUnreachable(stderr, "reload", cfg.Paths.Socket, err)
		return exitFailure
	}
	defer resp.Body.Close()

	var res reloadResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		fmt.Fprintf(stderr, "edgeward reload: bad answer from the daemon: %v\n", err)
		return exitFailure
	}
	if res.Error != "" {
		fmt.Fprintf(stderr, "edgeward reload: failed:\n%s\n", res.Error)
		return exitFailure
	}
	fmt.Fprintf(stdout, "reloaded: policy generation %d is active\n", res.Generation)
	return exitOK
}

// stopDaemon asks a daemon listening on socket to stop and waits until the
// socket is gone. It reports whether a daemon answered.
func stopDaemon(socket string) bool {
	client := controlClient(socket)
	client.Timeout = 5 * time.Second
	resp, err := client.Post("http://edgeward/v1/stop", "application/json", nil)
	if err != nil {
		return false
	}
	resp.Body.Close()

	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		conn, err := net.DialTimeout("unix", socket, time.Second)
		if err != nil {
			return true
		}
		conn.Close()
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
