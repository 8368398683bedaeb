package dnsguard

import (
	"context"
	"sync"

	"github.com/miekg/dns"
)

// Limits of the UDP socket reuse toward upstream servers.
const (
	poolIdle    = 16  // idle sockets kept per server
	poolMaxUses = 128 // exchanges per socket before it is replaced (new source port)
)

// pooledConn is a connected UDP socket to one upstream server.
type pooledConn struct {
	*dns.Conn
	uses int
}

// udpPool keeps connected UDP sockets per server, so that a query does
// not pay for a socket of its own. A socket serves one exchange at a
// time; one that saw an error or a timeout is closed, so a late answer
// can never be read as the answer to a later query. Safe for concurrent
// use.
type udpPool struct {
	client *dns.Client
	mu     sync.Mutex
	idle   map[string]chan *pooledConn
}

// exchange runs one UDP exchange with server on a pooled socket.
func (p *udpPool) exchange(ctx context.Context, server string, q *dns.Msg) (*dns.Msg, error) {
	c, err := p.get(ctx, server)
	if err != nil {
		return nil, err
	}

	resp, _, err := p.client.ExchangeWithConnContext(ctx, q, c.Conn)
	if err != nil {
		c.Close()
		return nil, err
	}
	p.put(server, c)
	return resp, nil
}

// get returns an idle socket to server or dials a new one.
func (p *udpPool) get(ctx context.Context, server string) (*pooledConn, error) {
	select {
	case c := <-p.queue(server):
		return c, nil
	default:
	}

	conn, err := p.client.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	return &pooledConn{Conn: conn}, nil
}

// put returns c to the pool, or closes it when it is worn out or the
// pool is full.
func (p *udpPool) put(server string, c *pooledConn) {
	c.uses++
	if c.uses >= poolMaxUses {
		c.Close()
		return
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case p.idle[server] <- c:
	default:
		c.Close()
	}
}

// queue returns the idle queue of server, creating it.
func (p *udpPool) queue(server string) chan *pooledConn {
	p.mu.Lock()
	defer p.mu.Unlock()

	if p.idle == nil {
		p.idle = map[string]chan *pooledConn{}
	}
	q := p.idle[server]
	if q == nil {
		q = make(chan *pooledConn, poolIdle)
		p.idle[server] = q
	}
	return q
}

// closeIdle closes every idle socket; the pool stays usable.
func (p *udpPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()

	for _, q := range p.idle {
		for len(q) > 0 {
			(<-q).Close()
		}
	}
}
