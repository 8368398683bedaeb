package loader

import (
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// Hook is where in the data path a packet was judged.
type Hook uint32

// Verdict is what happened to a packet.
type Verdict uint32

// Reason is why a packet got its verdict.
type Reason uint32

// The values Go code refers to by name. Their numbers come from the
// generated bindings of bpf/reasons.h, never from a second list.
const (
	HookTCEgress      = Hook(edgewardEwHookEW_HOOK_TC_EGRESS)
	HookXDPLAN        = Hook(edgewardEwHookEW_HOOK_XDP_LAN)
	HookUplinkIngress = Hook(edgewardEwHookEW_HOOK_UPLINK_INGRESS)
	// HookSocket is the socket guard: its cells count refused socket
	// calls, not packets, and carry no bytes.
	HookSocket = Hook(edgewardEwHookEW_HOOK_SOCKET)

	VerdictPass  = Verdict(edgewardEwVerdictEW_VERDICT_PASS)
	VerdictDrop  = Verdict(edgewardEwVerdictEW_VERDICT_DROP)
	VerdictAudit = Verdict(edgewardEwVerdictEW_VERDICT_AUDIT)

	// ReasonUnknown is the zero reason: no step decided on the packet.
	ReasonUnknown = Reason(edgewardEwReasonEW_REASON_UNKNOWN)

	numHooks    = int(edgewardEwHookEW_HOOK_MAX)
	numVerdicts = int(edgewardEwVerdictEW_VERDICT_MAX)
	numReasons  = int(edgewardEwReasonEW_REASON_MAX)

	firstDenyReason   = Reason(edgewardEwReasonEW_REASON_FIRST_DENY)
	firstSocketReason = Reason(edgewardEwReasonEW_REASON_FIRST_SOCKET)
)

// PacketHooks are the hooks that judge packets, in the order of their
// numbers; HookSocket judges socket calls.
var PacketHooks = []Hook{HookTCEgress, HookXDPLAN, HookUplinkIngress}

// names holds the lower-case names of the C enums, read from the BTF of the
// embedded object.
type names struct {
	hooks    map[uint32]string
	verdicts map[uint32]string
	reasons  map[uint32]string
}

var enumNames = sync.OnceValues(loadEnumNames)

// loadEnumNames reads the hook, verdict and reason enums from BTF.
func loadEnumNames() (*names, error) {
	spec, err := loadEdgeward()
	if err != nil {
		return nil, err
	}

	n := &names{}
	for _, e := range []struct {
		typ    string
		prefix string
		dst    *map[uint32]string
	}{
		{"ew_hook", "EW_HOOK_", &n.hooks},
		{"ew_verdict", "EW_VERDICT_", &n.verdicts},
		{"ew_reason", "EW_REASON_", &n.reasons},
	} {
		var enum *btf.Enum
		if err := spec.Types.TypeByName(e.typ, &enum); err != nil {
			return nil, fmt.Errorf("find enum %s in BTF: %w", e.typ, err)
		}
		*e.dst = enumValueNames(enum, e.prefix)
	}
	return n, nil
}

// enumValueNames maps each value of enum to its name without prefix, in
// lower case. Markers (FIRST_*, *_MAX) are left out.
func enumValueNames(enum *btf.Enum, prefix string) map[uint32]string {
	out := make(map[uint32]string, len(enum.Values))
	for _, v := range enum.Values {
		name := strings.TrimPrefix(v.Name, prefix)
		if name == "MAX" || strings.HasPrefix(name, "FIRST_") {
			continue
		}
		out[uint32(v.Value)] = strings.ToLower(name)
	}
	return out
}

func nameOf(pick func(*names) map[uint32]string, v uint32) string {
	n, err := enumNames()
	if err != nil {
		return fmt.Sprintf("%d", v)
	}
	if s, ok := pick(n)[v]; ok {
		return s
	}
	return fmt.Sprintf("%d", v)
}

// String returns the hook's name from bpf/reasons.h, e.g. "tc_egress".
func (h Hook) String() string {
	return nameOf(func(n *names) map[uint32]string { return n.hooks }, uint32(h))
}

// String returns the verdict's name, e.g. "drop".
func (v Verdict) String() string {
	return nameOf(func(n *names) map[uint32]string { return n.verdicts }, uint32(v))
}

// String returns the reason's name, e.g. "no_rule".
func (r Reason) String() string {
	return nameOf(func(n *names) map[uint32]string { return n.reasons }, uint32(r))
}

// Allows tells whether the reason lets a packet pass.
func (r Reason) Allows() bool {
	return r < firstDenyReason
}

// Socket tells whether the reason is one of the socket guard's, which
// deny a socket call (HookSocket) and never a packet.
func (r Reason) Socket() bool {
	return r >= firstSocketReason
}

// Reasons lists every reason defined in bpf/reasons.h, by number.
func Reasons() ([]Reason, error) {
	n, err := enumNames()
	if err != nil {
		return nil, err
	}
	out := make([]Reason, 0, len(n.reasons))
	for i := range numReasons {
		if _, ok := n.reasons[uint32(i)]; ok {
			out = append(out, Reason(i))
		}
	}
	return out, nil
}
