package kernel

import (
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vethPair connects namespace a, as device nameA, with namespace b, as
// nameB, gives each end its addresses and brings both up. The pair goes
// away with the namespaces.
func vethPair(t *testing.T, a netns.NsHandle, nameA string, addrsA []netip.Prefix,
	b netns.NsHandle, nameB string, addrsB []netip.Prefix) netlink.Link {
	t.Helper()
	ha := handleAt(t, a)
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: nameA},
		PeerName:      nameB,
		PeerNamespace: netlink.NsFd(b),
	}
	if err := ha.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair %s/%s: %v", nameA, nameB, err)
	}

	configureLink(t, handleAt(t, b), nameB, addrsB)
	return configureLink(t, ha, nameA, addrsA)
}

// newNamespace creates an empty network namespace without entering it.
func newNamespace(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("open the current network namespace: %v", err)
	}
	defer orig.Close()

	ns, err := netns.New() // enters it
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		// This thread must not run anything else: keep it locked, and Go
		// ends it with the test's goroutine.
		runtime.LockOSThread()
		t.Fatalf("return to the original network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// handleAt is a netlink handle working in ns.
func handleAt(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE) // only: xfrm may be a module that is not loaded
	if err != nil {
		t.Fatalf("netlink handle in namespace %s: %v", ns, err)
	}
	t.Cleanup(h.Close)
	return h
}

// configureLink brings lo and the named interface up and gives it addrs
// (IPv6 without duplicate address detection, so they are usable at once).
func configureLink(t *testing.T, h *netlink.Handle, name string, addrs []netip.Prefix) netlink.Link {
	t.Helper()
	dev, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	for _, p := range addrs {
		addr := &netlink.Addr{IPNet: ipNet(p), Flags: unix.IFA_F_NODAD}
		if err := h.AddrAdd(dev, addr); err != nil {
			t.Fatalf("add %s to %s: %v", p, name, err)
		}
	}

	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatalf("find lo: %v", err)
	}
	for _, lk := range []netlink.Link{lo, dev} {
		if err := h.LinkSetUp(lk); err != nil {
			t.Fatalf("set %s up: %v", lk.Attrs().Name, err)
		}
	}
	return dev
}

// ipNet converts p to the form netlink takes, keeping the host bits.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}

// inNamespace runs fn with the calling goroutine's thread in ns. Sockets
// fn opens belong to ns; netlink and BPF attach calls act there.
func inNamespace(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("open the current network namespace: %v", err)
	}
	defer orig.Close()

	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter network namespace %s: %v", ns, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: Go ends it with the goroutine.
			t.Errorf("return to the original network namespace: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}
