package config

import "slices"

// ifAlphabet is ifChars in the order the searches try them, so that
// witness names read like interface names.
var ifAlphabet = func() []byte {
	order := []byte("abcdefghijklmnopqrstuvwxyz0123456789-_.")
	for c := byte('!'); c <= '~'; c++ {
		if ifChars.has(c) && !slices.Contains(order, c) {
			order = append(order, c)
		}
	}
	return order
}()

// pair is a state of the product of two pattern NFAs.
type pair struct{ i, j int }

// edge remembers how a search state (a product pair or a position set) was
// first reached, to rebuild a witness name.
type edge[S comparable] struct {
	from S
	c    byte
}

// intersect returns an interface name (1-15 characters of ifChars) that
// both a and b match, and false when there is none.
//
// It explores the product of the two patterns' NFAs breadth first, one
// character per round, for at most maxIfName rounds; each product state is
// expanded once, at the depth it is first reached, which is enough since
// reaching it later leaves fewer characters to spend. Patterns are short
// (at most maxIfName non-star tokens after checkPattern), so the product
// has at most a few hundred states.
func intersect(a, b glob) (string, bool) {
	parent := map[pair]edge[pair]{}
	frontier := []pair{{0, 0}}

	for depth := 1; depth <= maxIfName; depth++ {
		var next []pair
		for _, st := range frontier {
			for _, c := range ifAlphabet {
				for _, to := range productStep(a, b, st, c) {
					if _, seen := parent[to]; seen {
						continue
					}
					parent[to] = edge[pair]{from: st, c: c}
					if a.accepts(to.i) && b.accepts(to.j) {
						return witness(parent, to, depth), true
					}
					next = append(next, to)
				}
			}
		}
		frontier = next
	}

	return "", false
}

// productStep returns the product states reached from st by reading c.
func productStep(a, b glob, st pair, c byte) []pair {
	var out []pair
	for _, i := range a.closure(st.i) {
		ni := a.step(i, c)
		if ni < 0 {
			continue
		}
		for _, j := range b.closure(st.j) {
			if nj := b.step(j, c); nj >= 0 {
				out = append(out, pair{ni, nj})
			}
		}
	}
	return out
}

// witness spells the name that led to st, depth characters long.
func witness[S comparable](parent map[S]edge[S], st S, depth int) string {
	name := make([]byte, depth)
	for k := depth - 1; k >= 0; k-- {
		e := parent[st]
		name[k] = e.c
		st = e.from
	}
	return string(name)
}

// matchesAll reports whether g matches every interface name of 1-15
// characters, and otherwise gives a name it does not match.
//
// It runs the subset construction of g's NFA breadth first, a set of
// positions being a bit mask (g has at most 2*maxIfName+1 tokens after
// checkPattern); g matches all names when no reachable set within
// maxIfName characters lacks the accepting position.
func (g glob) matchesAll() (string, bool) {
	if len(g.toks) >= 63 {
		return "", false // not a checked pattern: too long for the bit masks
	}

	start := g.closeSet(1)
	parent := map[uint64]edge[uint64]{}
	frontier := []uint64{start}

	for depth := 1; depth <= maxIfName; depth++ {
		var next []uint64
		for _, set := range frontier {
			for _, c := range ifAlphabet {
				to := g.stepSet(set, c)
				if _, seen := parent[to]; seen {
					continue
				}
				parent[to] = edge[uint64]{from: set, c: c}
				if !g.acceptsSet(to) {
					return witness(parent, to, depth), false
				}
				next = append(next, to)
			}
		}
		frontier = next
	}

	return "", true
}

// closeSet adds to set the positions its stars can skip to.
func (g glob) closeSet(set uint64) uint64 {
	for i := range g.toks {
		if set&(1<<i) != 0 && g.toks[i].star {
			set |= 1 << (i + 1)
		}
	}
	return set
}

// stepSet returns the closed set of positions after reading c from set.
func (g glob) stepSet(set uint64, c byte) uint64 {
	var out uint64
	for i := range g.toks {
		if set&(1<<i) == 0 {
			continue
		}
		if s := g.step(i, c); s >= 0 {
			out |= 1 << s
		}
	}
	return g.closeSet(out)
}

// acceptsSet reports whether set holds the accepting position.
func (g glob) acceptsSet(set uint64) bool {
	return set&(1<<len(g.toks)) != 0
}
