package netwatch

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/edgeward/edgeward/internal/testenv"
)

// TestWatch: in a fresh network namespace, Watch reports the interfaces
// there, then a veth pair as it appears (Ethernet) and as it goes, and a
// TUN device as layer 3.
func TestWatch(t *testing.T) {
	testenv.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer netns.Set(orig)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events := make(chan Event, 64)
	errc := make(chan error, 1)
	go func() {
		// Watch subscribes in the namespace of the thread that calls it.
		// The thread stays locked: it ends with the goroutine instead of
		// going back to the pool in the wrong namespace.
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- Watch(ctx, events)
	}()

	expectEvent(t, events, func(e Event) bool { return e.Link.Name == "lo" && !e.Removed })

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up9"}, PeerName: "up9p"}); err != nil {
		t.Fatal(err)
	}
	ev := expectEvent(t, events, func(e Event) bool { return e.Link.Name == "up9" && !e.Removed })
	if ev.Link.L3 {
		t.Error("a veth reported as layer 3")
	}

	if err := h.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tun9"}, Mode: netlink.TUNTAP_MODE_TUN}); err != nil {
		t.Fatal(err)
	}
	if ev := expectEvent(t, events, func(e Event) bool { return e.Link.Name == "tun9" }); !ev.Link.L3 {
		t.Error("a TUN device reported with an Ethernet header")
	}

	link, err := h.LinkByName("up9")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, events, func(e Event) bool { return e.Link.Name == "up9" && e.Removed })

	cancel()
	if err := <-errc; err != context.Canceled {
		t.Errorf("Watch returned %v after its context ended, want context.Canceled", err)
	}
}

func expectEvent(t *testing.T, events <-chan Event, match func(Event) bool) Event {
	t.Helper()
	timeout := time.After(2 * time.Second)
	for {
		select {
		case ev := <-events:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("expected interface event did not come within 2 s")
		}
	}
}
