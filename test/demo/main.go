// Command demo runs Edgeward on real traffic in a network sandbox (`make
// demo`): it builds the sandbox of test/sandbox (an OT host, the gateway, an
// uplink side with the TLS proxy and an internet host, and a cloud VPC behind
// a WireGuard tunnel), starts `edgeward run` in the gateway under the demo
// policy, tries real connections from the gateway and from the OT host,
// prints what was expected and what happened, and tears everything down,
// also on Ctrl-C or failure. It exits 1 when any observation differs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/test/demopolicy"
	"github.com/edgeward/edgeward/test/sandbox"
)

func main() {
	if os.Getenv(bypassEnv) == "1" {
		os.Exit(tryBypass())
	}
	bin := flag.String("bin", "bin/edgeward", "the edgeward binary to run")
	verbose := flag.Bool("v", false, "log every sandbox step")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ok, err := run(ctx, *bin, *verbose)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if !ok {
		fmt.Println("\nSome observations differ from what the policy says: see the table.")
		os.Exit(1)
	}
}

// run builds the sandbox, runs the demo and always tears the sandbox down.
func run(ctx context.Context, bin string, verbose bool) (ok bool, err error) {
	bin, err = filepath.Abs(bin)
	if err != nil {
		return false, err
	}

	logf := func(string, ...any) {}
	if verbose {
		logf = func(f string, a ...any) { fmt.Printf("  "+f+"\n", a...) }
	}
	fmt.Println("Building the sandbox: OT host, gateway, uplink side (proxy, internet host), VPC behind WireGuard ...")
	sb, err := sandbox.Start(ctx, sandbox.Options{Logf: logf})
	if err != nil {
		return false, err
	}
	defer func() {
		fmt.Println("\nTearing down: edgeward unload, daemons, namespaces, bpffs.")
		if cerr := teardown(sb, bin); cerr != nil && err == nil {
			err = cerr
		}
	}()

	broker, spool, err := startBroker(sb)
	if err != nil {
		return false, err
	}
	d := &demo{sb: sb, bin: bin}
	if err := d.startEnforcer(ctx, spool); err != nil {
		return false, err
	}
	ok = d.probeAll(ctx)
	ok = d.storeAndForward(ctx, broker) && ok
	d.printMetrics(ctx)
	return ok, ctx.Err()
}

// demo is one run against one sandbox.
type demo struct {
	sb      *sandbox.Sandbox
	bin     string
	cfgPath string
	bpffs   string
	daemon  *sandbox.Process
}

// killSignal ends the daemon the way a crash would.
var killSignal = syscall.SIGKILL

// startBroker starts mosquitto in the VPC and returns the spool section
// that forwards to it, with a client certificate of the sandbox CA.
func startBroker(s *sandbox.Sandbox) (*sandbox.Broker, string, error) {
	broker, err := s.StartBroker("plant-7/#")
	if err != nil {
		return nil, "", err
	}
	cert, key, err := s.IssueCert("gateway", "edgeward-gateway")
	if err != nil {
		return nil, "", err
	}
	return broker, spoolSection(broker, s.CAFile(), cert, key), nil
}

// startEnforcer writes the demo policy, starts `edgeward run` in the
// gateway and waits until the uplink is enforced.
func (d *demo) startEnforcer(ctx context.Context, spool string) error {
	d.bpffs = filepath.Join(d.sb.BPFFS, "edgeward")
	path, _, err := demopolicy.Write(d.sb.Dir, demopolicy.Params{BPFFS: d.bpffs, Dir: d.sb.Dir, Cgroup: d.sb.Cgroup, ExtraYAML: spool, Transparent: true})
	if err != nil {
		return err
	}
	d.cfgPath = path
	fmt.Printf("Policy %s:\n%s\n", path, indent(policyBody(path)))

	p, err := d.sb.StartProcess(sandbox.Gateway, "edgeward", d.bin, "run", "-c", path)
	if err != nil {
		return err
	}
	d.daemon = p
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.enforced(sandbox.GatewayWANIface) {
			fmt.Printf("edgeward runs in the gateway (pid %d) and enforces %s:\n%s\n", p.PID(), sandbox.GatewayWANIface, indent(p.Tail(5)))
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("edgeward exited:\n%s", p.Tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("uplink not enforced after 10 s:\n%s", p.Tail(20))
}

// enforced tells whether iface in the gateway carries our program.
func (d *demo) enforced(iface string) bool {
	found := false
	d.sb.Do(sandbox.Gateway, func() error {
		as, err := loader.Attachments(d.bpffs)
		for _, a := range as {
			found = found || a.Name == iface
		}
		return err
	})
	return found
}

// printMetrics shows a few lines of the daemon's Prometheus endpoint.
func (d *demo) printMetrics(ctx context.Context) {
	out, err := d.sb.Curl(ctx, sandbox.Gateway, "http://127.0.0.1:9470/metrics")
	if err != nil {
		fmt.Println("metrics:", err)
		return
	}
	fmt.Println("\nMetrics (curl http://127.0.0.1:9470/metrics in the gateway), a few lines:")
	for _, line := range strings.Split(out, "\n") {
		// Every counter cell is served; only those that counted are shown.
		counted := (strings.HasPrefix(line, "edgeward_packets_total") ||
			strings.HasPrefix(line, "edgeward_socket_options_denied_total")) && !strings.HasSuffix(line, " 0")
		if counted ||
			strings.HasPrefix(line, "edgeward_policy_") ||
			strings.HasPrefix(line, "edgeward_socket_guard_attached") ||
			strings.HasPrefix(line, `edgeward_interfaces{enforced="true"`) {
			fmt.Println("  " + line)
		}
	}
}

// teardown ends enforcement with `edgeward unload`, then closes the
// sandbox (daemons, namespaces, bpffs).
func teardown(sb *sandbox.Sandbox, bin string) error {
	cfg := filepath.Join(sb.Dir, "edgeward.yaml")
	if _, err := os.Stat(cfg); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := sb.Command(ctx, sandbox.Gateway, bin, "unload", "-c", cfg).CombinedOutput()
		cancel()
		fmt.Print(indent(string(out)))
		if err != nil {
			fmt.Println("  unload:", err)
		}
	}
	return sb.Close()
}

func policyBody(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}
