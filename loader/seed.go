package loader

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/edgeward/edgeward/config"
)

// SeedFlow is a connection that existed before enforcement started, as it
// leaves the uplink: Local is the address on the wire (after any NAT).
type SeedFlow struct {
	Proto         config.Proto
	Local, Remote netip.AddrPort
}

// SeedFlows records flows the kernel's connection tracking knows from
// before enforcement started, so their replies keep coming in. A flow
// already recorded is left as it is. It returns how many it recorded.
func (l *Loader) SeedFlows(flows []SeedFlow) (int, error) {
	now, err := bootNow()
	if err != nil {
		return 0, err
	}
	seeded := 0
	var errs []error
	for _, f := range flows {
		key, state := seedKey(f)
		value := edgewardEwFlow{
			State:   state,
			Reason:  uint8(edgewardEwReasonEW_REASON_ENDPOINT),
			Expires: uint64(now) + uint64(flowTimeout(f.Proto, state)),
		}
		err := l.objs.Flows.Update(&key, &value, ebpf.UpdateNoExist)
		switch {
		case err == nil:
			seeded++
		case !errors.Is(err, ebpf.ErrKeyExist):
			errs = append(errs, fmt.Errorf("seed flow %s -> %s: %w", f.Local, f.Remote, err))
		}
	}
	return seeded, errors.Join(errs...)
}

func seedKey(f SeedFlow) (edgewardEwFlowKey, uint8) {
	local, remote := f.Local.Addr().Unmap(), f.Remote.Addr().Unmap()
	key := edgewardEwFlowKey{
		Family: familyIPv6, Proto: uint8(f.Proto),
		Sport: f.Local.Port(), Dport: f.Remote.Port(),
		Saddr: addrWords(local), Daddr: addrWords(remote),
	}
	if local.Is4() {
		key.Family = familyIPv4
	}
	state := uint8(0) // new, for UDP
	if f.Proto == config.ProtoTCP {
		state = 1 // established
	}
	return key, state
}

// flowTimeout mirrors ew_flow_timeout in bpf/flow.h for the states SeedFlows
// writes.
func flowTimeout(proto config.Proto, state uint8) int64 {
	const sec = int64(1e9)
	if proto == config.ProtoTCP && state == 1 {
		return 5 * 24 * 3600 * sec
	}
	return 180 * sec
}
