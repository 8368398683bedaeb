package intercept

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"text/template"

	"github.com/coreos/go-iptables/iptables"
)

// GuardMark is the socket mark (SO_MARK) of the guard's own sockets, and
// GuardMask the bits of it the rules compare.
const (
	GuardMark uint32 = 0x4577 // "Ew"
	GuardMask uint32 = 0xffff
)

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

// oneJump leaves exactly one jump from the built-in chain to ours: it adds
// it first in the chain when it is missing, and removes extra copies.
func oneJump(ipt *iptables.IPTables, from, to string) error {
	rules, err := ipt.List("filter", from)
	if err != nil {
		return err
	}
	n := 0
	for _, r := range rules {
		if r == "-A "+from+" -j "+to {
			n++
		}
	}
	for ; n > 1; n-- {
		if err := ipt.Delete("filter", from, "-j", to); err != nil {
			return err
		}
	}
	if n == 0 {
		return ipt.Insert("filter", from, 1, "-j", to)
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
// both families, each jump exists once and each chain holds as many rules
// as the ruleset has. Someone else's iptables command (a firewall reload,
// iptables -F) can take them away; see Queue.KeepRules.
func Intact(queue uint16) (bool, error) {
	text, err := rulesText(queue)
	if err != nil {
		return false, err
	}
	want := countRules(text)
	for _, f := range families {
		out, err := exec.Command(strings.TrimSuffix(f.restore, "-restore")+"-save", "-t", "filter").Output()
		if err != nil {
			return false, fmt.Errorf("%s-save: %w", strings.TrimSuffix(f.restore, "-restore"), err)
		}
		if got := countRules(string(out)); !sameCounts(got, want) {
			return false, nil
		}
	}
	return true, nil
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
