package intercept

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/edgeward/edgeward/dnsguard"
)

// Judge decides on one intercepted DNS message: dnsguard.Guard's
// JudgeIntercepted. It must honour ctx and be safe on any bytes.
type Judge func(ctx context.Context, p dnsguard.Intercepted) dnsguard.InterceptVerdict

// IsLAN tells whether the interface with this index faces the OT network.
// The queue marks datagrams that came in on one (Intercepted.FromLAN).
type IsLAN func(ifindex int) bool

// maxDatagram is the most of a queued packet copied to the reader: a whole
// UDP datagram, so an answer is judged on all of its records.
const maxDatagram = 0xffff

// receiveBuffer is the socket buffer the kernel queues messages in for the
// reader; past it they are dropped (counted as overruns).
const receiveBuffer = 4 << 20

// Queue reads one NFQUEUE and issues a verdict for every packet. Create it
// with Open; Close unbinds it, after which the kernel drops what the rules
// queue (fail closed).
type Queue struct {
	num    uint16
	netns  netns.NsHandle // the network namespace Open ran in: the rules' home
	stats  *os.File       // the kernel's queue statistics, of that namespace
	statMu sync.Mutex
	nf     *nfqueue.Nfqueue
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	unparsable, verdictErrs, enobufs atomic.Uint64
	restores                         atomic.Uint64 // rules put back by KeepRules
	keeping                          sync.WaitGroup
	lastErrLog                       atomic.Int64 // unix nanoseconds
}

// Open binds queue num with room for length waiting packets and starts
// judging its packets with judge. It fails when the kernel has no NFQUEUE
// or another program holds num.
func Open(num uint16, length uint32, judge Judge, isLAN IsLAN, log *slog.Logger) (*Queue, error) {
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      num,
		MaxQueueLen:  length,
		MaxPacketLen: maxDatagram,
		Copymode:     nfqueue.NfQnlCopyPacket,
		AfFamily:     unix.AF_UNSPEC,
		WriteTimeout: time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("open nfqueue %d (transparent DNS needs the kernel's nfnetlink_queue): %w", num, err)
	}
	// Overruns are counted by the kernel (Stats); without this option the
	// socket would report them as errors instead of going on.
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: %w", num, err)
	}
	if err := nf.Con.SetReadBuffer(receiveBuffer); err != nil {
		log.Warn("nfqueue: could not enlarge the receive buffer", "queue", num, "err", err)
	}

	home, err := netns.Get()
	if err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: read the network namespace: %w", num, err)
	}
	// A /proc/net file shows the namespace of whoever opened it, so the
	// statistics are opened here, on this thread, once.
	stats, err := os.Open("/proc/thread-self/net/netfilter/nfnetlink_queue")
	if err != nil {
		home.Close()
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: open its statistics: %w", num, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{num: num, netns: home, stats: stats, nf: nf, log: log, cancel: cancel, done: make(chan struct{})}
	hook := func(a nfqueue.Attribute) int { q.handle(ctx, judge, isLAN, a); return 0 }
	if err := nf.RegisterWithErrorFunc(ctx, hook, q.onError); err != nil {
		cancel()
		nf.Close()
		home.Close()
		stats.Close()
		return nil, fmt.Errorf("bind nfqueue %d (is another program using it?): %w", num, err)
	}
	go func() {
		<-ctx.Done()
		close(q.done)
	}()
	return q, nil
}

// handle judges one packet and issues its verdict. A packet that does not
// parse, or that the judge refuses, is dropped. isLAN may be nil.
func (q *Queue) handle(ctx context.Context, judge Judge, isLAN IsLAN, a nfqueue.Attribute) {
	if a.PacketID == nil {
		return
	}
	accept := false
	if a.Payload != nil {
		p, err := parseDatagram(*a.Payload)
		if err != nil {
			q.unparsable.Add(1)
		} else {
			p.FromLAN = a.InDev != nil && isLAN != nil && isLAN(int(*a.InDev))
			accept = judge(ctx, p).Accept
		}
	}

	var err error
	if accept {
		// The mark tells the data plane's egress gate that the guard let
		// this packet through.
		err = q.nf.SetVerdictWithMark(*a.PacketID, nfqueue.NfAccept, int(guardMarked(a.Mark)))
	} else {
		err = q.nf.SetVerdict(*a.PacketID, nfqueue.NfDrop)
	}
	if err != nil {
		q.verdictErrs.Add(1)
		q.logError("nfqueue: verdict not delivered (the kernel drops the packet after its timeout)", err)
	}
}

// guardMarked is a packet mark with the guard's bits set to GuardMark and
// the others kept.
func guardMarked(mark *uint32) uint32 {
	var m uint32
	if mark != nil {
		m = *mark
	}
	return m&^GuardMask | GuardMark
}

// onError survives what the socket reports: an overrun (ENOBUFS) is
// counted, other errors are logged at most once a second. Only the end of
// the queue's context stops reading.
func (q *Queue) onError(err error) int {
	select {
	case <-q.done:
		return 1
	default:
	}
	if errors.Is(err, unix.ENOBUFS) {
		q.enobufs.Add(1)
		return 0
	}
	var opErr *netlink.OpError
	if errors.As(err, &opErr) && opErr.Timeout() {
		return 0
	}
	q.logError("nfqueue: receive failed", err)
	return 0
}

// logError logs err at most once a second.
func (q *Queue) logError(msg string, err error) {
	now := time.Now().UnixNano()
	last := q.lastErrLog.Load()
	if now-last < int64(time.Second) || !q.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	q.log.Warn(msg, "queue", q.num, "err", err)
}

// KeepRules checks every interval, until the queue closes, that the rules
// for it are intact, and installs them again when they are not: another
// program's iptables command must not leave DNS unjudged for longer than
// interval. Each restore is logged and counted. The checks run in the
// network namespace Open ran in, whatever thread the caller is on.
func (q *Queue) KeepRules(interval time.Duration) {
	q.keeping.Add(1)
	go func() {
		defer q.keeping.Done()
		// The thread stays locked: it ends with the goroutine, so its
		// namespace never leaks to other goroutines.
		runtime.LockOSThread()
		if err := q.enterHome(); err != nil {
			q.log.Error("transparent dns: cannot enter the queue's network namespace; the rules are not watched", "err", err)
			return
		}
		var want []string
		q.restoreRules(&want)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-q.done:
				return
			case <-tick.C:
				q.restoreRules(&want)
			}
		}
	}()
}

// enterHome switches the calling (locked) thread into the namespace Open
// ran in, unless it is there already: a daemon is in one namespace
// throughout and may lack CAP_SYS_ADMIN, which entering one needs.
func (q *Queue) enterHome() error {
	cur, err := netns.Get()
	if err != nil {
		return err
	}
	defer cur.Close()
	if cur.Equal(q.netns) {
		return nil
	}
	return netns.Set(q.netns)
}

// restoreRules installs the rules again when they are not intact, or when
// their text differs from what it was when they were last known intact
// (a rule of ours replaced by another of the same count). want is that
// text, kept between calls by the keeper's goroutine.
func (q *Queue) restoreRules(want *[]string) {
	saved, err := Saved()
	if err != nil {
		q.logError("transparent dns: cannot check the rules", err)
		return
	}
	intact, err := intactIn(saved, q.num)
	if err != nil {
		q.logError("transparent dns: cannot check the rules", err)
		return
	}
	if intact && *want == nil {
		*want = saved // the first check after the daemon installed them
	}
	if intact && slices.Equal(saved, *want) {
		return
	}

	if err := Install(q.num); err != nil {
		q.logError("transparent dns: the rules were changed and cannot be restored", err)
		return
	}
	if *want, err = Saved(); err != nil {
		*want = nil
	}
	q.restores.Add(1)
	q.log.Warn("transparent dns: the rules were changed by another program; restored them", "queue", q.num)
}

// Close unbinds the queue and waits for the reader and the rule keeper
// to stop.
func (q *Queue) Close() error {
	q.cancel()
	<-q.done
	q.keeping.Wait()
	err := q.nf.Close()
	q.netns.Close()
	q.stats.Close()
	return err
}

// Stats are what a queue lost, from the kernel and from the reader.
type Stats struct {
	Waiting     uint64 // packets waiting for a verdict now
	QueueFull   uint64 // dropped by the kernel: the queue was full
	Overruns    uint64 // dropped by the kernel: the reader's socket buffer was full
	ENOBUFS     uint64 // overruns the socket reported (0 with NoENOBUFS set)
	Unparsable  uint64 // dropped by the reader: not an IP/UDP datagram
	VerdictErrs uint64 // verdicts the kernel did not take
	Restores    uint64 // times KeepRules put the rules back
}

// Stats reads the kernel's counters of the queue (in this network
// namespace) and the reader's own. The kernel's are zero when the queue is
// not bound.
func (q *Queue) Stats() (Stats, error) {
	s, err := q.kernelStats()
	s.ENOBUFS = q.enobufs.Load()
	s.Unparsable = q.unparsable.Load()
	s.VerdictErrs = q.verdictErrs.Load()
	s.Restores = q.restores.Load()
	return s, err
}

// kernelStats reads the queue's line of nfnetlink_queue, whose lines are
// "queue portid waiting copy_mode copy_range queue_dropped user_dropped
// last_id 1".
func (q *Queue) kernelStats() (Stats, error) {
	q.statMu.Lock()
	defer q.statMu.Unlock()
	if _, err := q.stats.Seek(0, io.SeekStart); err != nil {
		return Stats{}, fmt.Errorf("read nfqueue statistics: %w", err)
	}
	return parseKernelStats(q.stats, q.num)
}

func parseKernelStats(r io.Reader, num uint16) (Stats, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || fields[0] != strconv.Itoa(int(num)) {
			continue
		}
		var s Stats
		s.Waiting, _ = strconv.ParseUint(fields[2], 10, 64)
		s.QueueFull, _ = strconv.ParseUint(fields[5], 10, 64)
		s.Overruns, _ = strconv.ParseUint(fields[6], 10, 64)
		return s, nil
	}
	return Stats{}, sc.Err()
}
