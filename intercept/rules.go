package intercept

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"text/template"

	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/loader"

	"github.com/coreos/go-iptables/iptables"
)

// The guard's mark is the data plane's (loader.GuardMark): one value marks
// the guard's sockets, passes the rules unqueued and passes the egress
// gate.
const (
	GuardMark = loader.GuardMark
	GuardMask = loader.GuardMask
)

// MarkSocket gives a socket GuardMark, as a net.ListenConfig or
// net.Dialer Control function: what the guard sends from it passes the
// rules unqueued. It fails without CAP_NET_ADMIN.
func MarkSocket(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(GuardMark))
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("mark the socket (SO_MARK %#x): %w", GuardMark, serr)
	}
	return nil
}

// The chains of the rules, and the built-in chain each hangs from.
const (
	chainOut = "EDGEWARD-DNS-OUT"
	chainFwd = "EDGEWARD-DNS-FWD"
	chainIn  = "EDGEWARD-DNS-IN"
)

var jumps = []struct{ from, to string }{
	{"OUTPUT", chainOut},
	{"FORWARD", chainFwd},
	{"INPUT", chainIn},
}

// ruleset is the content of the chains, in iptables-restore syntax. Chain
// lines flush the chain first, all in one transaction with --noflush.
var ruleset = template.Must(template.New("rules").Parse(`*filter
:{{.Out}} - [0:0]
:{{.Fwd}} - [0:0]
:{{.In}} - [0:0]
-A {{.Out}} -o lo -j RETURN
-A {{.Out}} -m mark --mark {{.Mark}} -j CONNMARK --or-mark {{.MarkValue}}
-A {{.Out}} -m mark --mark {{.Mark}} -j RETURN
-A {{.Out}} -p udp --dport 53 -j NFQUEUE --queue-num {{.Queue}}
-A {{.Out}} -p tcp --dport 53 -j REJECT --reject-with tcp-reset
-A {{.Fwd}} -p udp --dport 53 -j NFQUEUE --queue-num {{.Queue}}
-A {{.Fwd}} -p udp --sport 53 -j NFQUEUE --queue-num {{.Queue}}
-A {{.Fwd}} -p tcp --dport 53 -j REJECT --reject-with tcp-reset
-A {{.Fwd}} -p tcp --sport 53 -j DROP
-A {{.In}} -i lo -j RETURN
-A {{.In}} -p udp --dport 53 -j RETURN
-A {{.In}} -m connmark --mark {{.Mark}} -j RETURN
-A {{.In}} -p udp --sport 53 -j NFQUEUE --queue-num {{.Queue}}
COMMIT
`))

// family is one IP family's pair of commands.
type family struct {
	name    string
	proto   iptables.Protocol
	restore string
}

var families = []family{
	{"IPv4", iptables.ProtocolIPv4, "iptables-restore"},
	{"IPv6", iptables.ProtocolIPv6, "ip6tables-restore"},
}

// Install puts the rules in place for queue, in the network namespace of
// the calling thread, for IPv4 and IPv6. It is idempotent: run again, it
// replaces the chains' content in one step and adds no second jump. It
// fails when iptables is missing or refuses a rule (a kernel without the
// NFQUEUE, CONNMARK or REJECT targets).
func Install(queue uint16) error {
	text, err := rulesText(queue)
	if err != nil {
		return err
	}
	for _, f := range families {
		if err := install(f, text); err != nil {
			return fmt.Errorf("transparent DNS rules (%s): %w", f.name, err)
		}
	}
	return nil
}

func rulesText(queue uint16) (string, error) {
	var b bytes.Buffer
	err := ruleset.Execute(&b, map[string]any{
		"Out": chainOut, "Fwd": chainFwd, "In": chainIn, "Queue": queue,
		"Mark": fmt.Sprintf("%#x/%#x", GuardMark, GuardMask), "MarkValue": fmt.Sprintf("%#x", GuardMark),
	})
	return b.String(), err
}

// install loads the chains, then makes sure each built-in chain jumps to
// its own chain once, first. The chains are full before the jumps exist.
func install(f family, text string) error {
	cmd := exec.Command(f.restore, "--wait", "--noflush")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("transparent DNS needs the iptables commands (Debian package iptables): %w", err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", f.restore, err, bytes.TrimSpace(out))
	}

	ipt, err := iptables.New(iptables.IPFamily(f.proto))
	if err != nil {
		return err
	}
	for _, j := range jumps {
		if err := oneJump(ipt, j.from, j.to); err != nil {
			return err
		}
	}
	return nil
}

// oneJump leaves exactly one jump from the built-in chain to ours, as its
// first rule: a rule another program puts ahead of it (an ACCEPT) would
// let DNS past the queue. The jump is inserted first before any copy is
// removed, so the chain is never without one.
func oneJump(ipt *iptables.IPTables, from, to string) error {
	rules, err := ipt.List("filter", from)
	if err != nil {
		return err
	}
	jump := "-A " + from + " -j " + to
	n, first := 0, false
	for i, r := range rules {
		if r == jump {
			n++
			first = first || i == 1 // rules[0] is the policy line
		}
	}
	if n == 1 && first {
		return nil
	}
	if err := ipt.Insert("filter", from, 1, "-j", to); err != nil {
		return err
	}
	for ; n > 0; n-- {
		if err := deleteLast(ipt, from, jump); err != nil {
			return err
		}
	}
	return nil
}

// deleteLast deletes the last copy of rule from chain: the one oneJump
// just inserted first stays.
func deleteLast(ipt *iptables.IPTables, chain, rule string) error {
	rules, err := ipt.List("filter", chain)
	if err != nil {
		return err
	}
	for i := len(rules) - 1; i > 1; i-- {
		if rules[i] == rule {
			return ipt.DeleteById("filter", chain, i)
		}
	}
	return nil
}

// Remove takes the rules away: the jumps, then the chains. Rules that are
// not there are no error, so Remove can always be called.
func Remove() error {
	var errs []error
	for _, f := range families {
		if err := remove(f); err != nil {
			errs = append(errs, fmt.Errorf("remove transparent DNS rules (%s): %w", f.name, err))
		}
	}
	return errors.Join(errs...)
}

func remove(f family) error {
	ipt, err := iptables.New(iptables.IPFamily(f.proto))
	if errors.Is(err, exec.ErrNotFound) {
		return nil // no iptables, so no rules of ours either
	}
	if err != nil {
		return err
	}
	for _, j := range jumps {
		for {
			exists, err := ipt.Exists("filter", j.from, "-j", j.to)
			if err != nil || !exists {
				break
			}
			if err := ipt.Delete("filter", j.from, "-j", j.to); err != nil {
				return err
			}
		}
	}
	for _, j := range jumps {
		exists, err := ipt.ChainExists("filter", j.to)
		if err != nil {
			return err
		}
		if exists {
			if err := ipt.ClearAndDeleteChain("filter", j.to); err != nil {
				return err
			}
		}
	}
	return nil
}

// Intact tells whether the rules are in place as Install left them: in
// both families, each jump exists once as the first rule of its built-in
// chain, and each chain holds as many rules, sending to queue, as the
// ruleset has. Someone else's iptables command (a firewall reload,
// iptables -F, a rule inserted first) can undo them; see Queue.KeepRules,
// which also compares the rules' text.
func Intact(queue uint16) (bool, error) {
	saved, err := Saved()
	if err != nil {
		return false, err
	}
	return intactIn(saved, queue)
}

// intactIn is Intact on rules Saved already read.
func intactIn(saved []string, queue uint16) (bool, error) {
	text, err := rulesText(queue)
	if err != nil {
		return false, err
	}
	want := countRules(text)
	for _, out := range saved {
		if got := countRules(out); !sameCounts(got, want) || !jumpsFirst(out) {
			return false, nil
		}
	}
	return true, nil
}

// Saved returns, per family, the filter table's rules that are ours: our
// chains' rules and the first rule of each built-in chain we jump from, in
// iptables-save syntax (as iptables normalizes them). Two calls return the
// same text while nobody changes the rules.
func Saved() ([]string, error) {
	var out []string
	for _, f := range families {
		cmd := strings.TrimSuffix(f.restore, "-restore") + "-save"
		text, err := exec.Command(cmd, "-t", "filter").Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		out = append(out, ourRules(string(text)))
	}
	return out, nil
}

// ourRules keeps the lines of iptables-save output that are ours, or that
// come first in a chain we jump from.
func ourRules(text string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "-A" {
			continue
		}
		for _, j := range jumps {
			if fields[1] == j.to || (fields[1] == j.from && !seen[j.from]) {
				b.WriteString(line + "\n")
			}
		}
		seen[fields[1]] = true
	}
	return b.String()
}

// jumpsFirst tells whether each built-in chain's first rule in ourRules
// output is the jump to our chain.
func jumpsFirst(saved string) bool {
	for _, j := range jumps {
		if !strings.Contains(saved, "-A "+j.from+" -j "+j.to+"\n") {
			return false
		}
	}
	return true
}

// countRules counts, in iptables-save syntax, the rules of each of our
// chains, the jumps into them (keyed "from>to"), and each queue number our
// rules send to (keyed "queue N").
func countRules(text string) map[string]int {
	counts := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "-A" {
			continue
		}
		for _, j := range jumps {
			switch {
			case fields[1] == j.to:
				counts[j.to]++
				if _, num, ok := strings.Cut(line, "--queue-num "); ok {
					counts["queue "+strings.Fields(num)[0]]++
				}
			case fields[1] == j.from && line == "-A "+j.from+" -j "+j.to:
				counts[j.from+">"+j.to]++
			}
		}
	}
	return counts
}

func sameCounts(got, want map[string]int) bool {
	for _, j := range jumps {
		if got[j.to] != want[j.to] || got[j.from+">"+j.to] != 1 {
			return false
		}
	}
	for key, n := range want {
		if strings.HasPrefix(key, "queue ") && got[key] != n {
			return false
		}
	}
	return true
}

// Installed tells whether the jumps to the rules exist, for IPv4 and IPv6.
func Installed() (bool, error) {
	for _, f := range families {
		ipt, err := iptables.New(iptables.IPFamily(f.proto))
		if errors.Is(err, exec.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		for _, j := range jumps {
			exists, err := ipt.Exists("filter", j.from, "-j", j.to)
			if err != nil || !exists {
				return false, err
			}
		}
	}
	return true, nil
}
