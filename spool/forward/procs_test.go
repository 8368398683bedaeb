package forward

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening polls until something accepts on 127.0.0.1:port.
func waitListening(t testing.TB, port int) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for range 100 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// process is a server the test started; it is ended by PID.
type process struct {
	t    testing.TB
	name string
	args []string
	out  bytes.Buffer
	cmd  *exec.Cmd
}

// start runs the program; the test's cleanup kills it if still running.
func (p *process) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.name, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.t.Cleanup(func() { p.stop(syscall.SIGKILL) })
}

// stop sends sig to the process and waits for it to end (at most 5 s,
// then SIGKILL).
func (p *process) stop(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil || p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(sig)

	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// broker is a mosquitto with one TLS listener on 127.0.0.1 that requires
// a client certificate signed by the test CA.
type broker struct {
	t    testing.TB
	port int
	conf string
	log  string
	proc *process
}

// startBroker writes the configuration and starts mosquitto, logging
// everything (the log lists each PUBACK).
func startBroker(t testing.TB, pki *testPKI) *broker {
	t.Helper()
	return startBrokerLogging(t, pki, "all")
}

// startBrokerLogging starts mosquitto with the given log_type.
func startBrokerLogging(t testing.TB, pki *testPKI, logType string) *broker {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		t.Fatalf("mosquitto not installed (Debian package mosquitto): %v", err)
	}

	dir := t.TempDir()
	b := &broker{t: t, port: freePort(t), conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log")}
	conf := strings.Join([]string{
		"user root",
		"persistence true",
		"persistence_location " + dir + "/",
		"log_dest file " + b.log,
		"log_type " + logType,
		"max_queued_messages 0",
		"set_tcp_nodelay true",
		fmt.Sprintf("listener %d 127.0.0.1", b.port),
		"allow_anonymous true",
		"cafile " + pki.caFile,
		"certfile " + pki.serverCert,
		"keyfile " + pki.serverKey,
		"require_certificate true",
	}, "\n") + "\n"
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	b.start()
	return b
}

// start runs mosquitto and waits until it listens.
func (b *broker) start() {
	b.t.Helper()
	b.proc = &process{t: b.t, name: "mosquitto", args: []string{"-c", b.conf}}
	b.proc.start()
	waitListening(b.t, b.port)
}

// stop ends mosquitto gracefully (it saves its persistent sessions).
func (b *broker) stop() { b.proc.stop(syscall.SIGTERM) }

// kill ends mosquitto at once.
func (b *broker) kill() { b.proc.stop(syscall.SIGKILL) }

// url is the forwarder's URL for this broker.
func (b *broker) url() string { return fmt.Sprintf("mqtts://127.0.0.1:%d", b.port) }

// logText returns mosquitto's log so far.
func (b *broker) logText() string {
	data, _ := os.ReadFile(b.log)
	return string(data)
}

// proxy is a tinyproxy the test started.
type proxy struct {
	url string
	log string
}

// connects counts the CONNECT requests tinyproxy logged.
func (p *proxy) connects() int {
	data, _ := os.ReadFile(p.log)
	return strings.Count(string(data), "Request (file descriptor")
}

// startProxy starts tinyproxy on a free port, allowing CONNECT to the
// given ports only.
func startProxy(t testing.TB, connectPorts ...int) *proxy {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)

	lines := []string{
		fmt.Sprintf("Port %d", port),
		"Listen 127.0.0.1",
		"Timeout 60",
		"MaxClients 20",
		"Allow 127.0.0.1",
		"LogLevel Info",
		`LogFile "` + filepath.Join(dir, "tinyproxy.log") + `"`,
	}
	for _, p := range connectPorts {
		lines = append(lines, fmt.Sprintf("ConnectPort %d", p))
	}
	conf := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	p := &process{t: t, name: "tinyproxy", args: []string{"-d", "-c", conf}}
	p.start()
	waitListening(t, port)
	return &proxy{url: fmt.Sprintf("http://127.0.0.1:%d", port), log: filepath.Join(dir, "tinyproxy.log")}
}
