// Package netwatch reports the network interfaces of the current network
// namespace as they exist and as they come, change and go, from rtnetlink.
// It decides nothing: the daemon classifies what it reports.
package netwatch

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is what the daemon needs to know of an interface.
type Link struct {
	Index int
	Name  string
	// L3 is set for devices without an Ethernet header (TUN, PPP, raw-IP
	// modems, and any link type that is not Ethernet).
	L3 bool
	Up bool
}

// Event is one change: an interface that exists (first the ones present
// when Watch starts, then new or changed ones), or one that was removed.
type Event struct {
	Link    Link
	Removed bool
}

// Watch sends an Event for every interface present now and then for every
// change, until ctx ends or the netlink socket fails. It watches the
// network namespace of the calling thread. It returns the
// failure; a closed ctx returns ctx.Err(). Events arrive in the order the
// kernel sent them; a slow receiver delays the netlink socket, which the
// kernel may answer with a lost-message error (returned, so the caller can
// start over and resynchronise).
func Watch(ctx context.Context, events chan<- Event) error {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)

	failed := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribe to link updates: %w", err)
	}

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-failed:
			return fmt.Errorf("link updates: %w", err)
		case u, ok := <-updates:
			if !ok {
				return fmt.Errorf("link updates: subscription closed")
			}
			if err := send(ctx, events, toEvent(u)); err != nil {
				return err
			}
		}
	}
}

func send(ctx context.Context, events chan<- Event, ev Event) error {
	select {
	case events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func toEvent(u netlink.LinkUpdate) Event {
	return Event{
		Link:    fromAttrs(u.Link.Attrs(), u.IfInfomsg.Flags),
		Removed: u.Header.Type == unix.RTM_DELLINK,
	}
}

// List returns the interfaces of the current network namespace.
func List() ([]Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make([]Link, 0, len(links))
	for _, l := range links {
		out = append(out, fromAttrs(l.Attrs(), uint32(l.Attrs().RawFlags)))
	}
	return out, nil
}

func fromAttrs(a *netlink.LinkAttrs, flags uint32) Link {
	return Link{
		Index: a.Index,
		Name:  a.Name,
		L3:    a.EncapType != "ether",
		Up:    flags&unix.IFF_UP != 0,
	}
}
