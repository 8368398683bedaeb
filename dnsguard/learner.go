package dnsguard

import (
	"context"
	"net/netip"
	"time"

	"github.com/edgeward/edgeward/config"
)

// Learner writes learned destinations into the data plane. Learn must
// return only after the kernel map holds the entries, so that a reply the
// guard releases after Learn returned never races the map. An error makes
// the guard answer SERVFAIL (fail closed); Learn must honour ctx, since
// the client is waiting.
type Learner interface {
	Learn(ctx context.Context, entries []Learned) error
}

// Forgetter is optionally implemented by a Learner. The guard calls
// Forget for entries it evicts to respect Options.MaxAddrsPerName. It is
// housekeeping only: expiry is enforced by the kernel clock anyway, so an
// error is counted and otherwise ignored.
type Forgetter interface {
	Forget(ctx context.Context, entries []Learned) error
}

// Learned is one destination the guard learned from an accepted answer.
type Learned struct {
	Addr    netip.Addr         // IPv4 (unmapped) or IPv6
	Ports   []config.PortRange // the name's ports
	Expires time.Duration      // lifetime from now (TTL clamped to [min,max])
	Name    string             // the matching pattern, for metrics (never a label of unbounded cardinality)
}
