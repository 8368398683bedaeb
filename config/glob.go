package config

import (
	"errors"
	"fmt"
	"math/bits"
)

// maxIfName is the longest Linux interface name (IFNAMSIZ - 1).
const maxIfName = 15

// charSet is a set of ASCII bytes.
type charSet [2]uint64

// add puts the bytes lo..hi into s.
func (s *charSet) add(lo, hi byte) {
	for c := int(lo); c <= int(hi); c++ {
		s[c/64] |= 1 << (c % 64)
	}
}

// has reports whether c is in s.
func (s charSet) has(c byte) bool {
	return c < 128 && s[c/64]&(1<<(c%64)) != 0
}

// size returns the number of bytes in s.
func (s charSet) size() int {
	return bits.OnesCount64(s[0]) + bits.OnesCount64(s[1])
}

// ifChars is every byte an interface name may hold, as far as patterns are
// concerned: printable ASCII except '/' and ':', which Linux refuses in
// names, and the space.
var ifChars = func() charSet {
	var s charSet
	s.add('!', '~')
	s[0] &^= 1<<'/' | 1<<':'
	return s
}()

// globTok is one element of a pattern: a star, or one character out of set.
type globTok struct {
	star bool
	set  charSet
}

// glob is an interface-name pattern in path.Match syntax, compiled to a
// small NFA over ifChars: position i means "before token i", position
// len(toks) accepts.
type glob struct {
	text string
	toks []globTok
}

// errUnterminated is the error for a character class without its ']'.
var errUnterminated = errors.New("unterminated character class: missing ]")

// parseGlob compiles a pattern of path.Match: '*' any run of characters,
// '?' one character, '[...]' a class ('^' negates, 'a-z' ranges, '\'
// escapes), '\c' the literal c. It is stricter than path.Match: it refuses
// characters that no interface name holds, empty ranges such as [z-a] and
// the shell's "[!...]", which path.Match would read as a class holding '!'.
func parseGlob(pat string) (glob, error) {
	g := glob{text: pat}
	for i := 0; i < len(pat); {
		c := pat[i]
		if c < '!' || c > '~' {
			return glob{}, badByte(c)
		}

		var tok globTok
		var err error
		switch c {
		case '*':
			i++
			if n := len(g.toks); n > 0 && g.toks[n-1].star {
				continue
			}
			tok.star = true
		case '?':
			i++
			tok.set = ifChars
		case '[':
			tok.set, i, err = parseClass(pat, i+1)
		case '\\':
			if i+1 == len(pat) {
				return glob{}, errors.New("ends with a lone backslash")
			}
			tok.set, err = literal(pat[i+1])
			i += 2
		default:
			tok.set, err = literal(c)
			i++
		}
		if err != nil {
			return glob{}, err
		}
		g.toks = append(g.toks, tok)
	}

	return g, nil
}

// badByte explains a byte that may not appear in a pattern.
func badByte(c byte) error {
	if c >= 0x80 {
		return errors.New("non-ASCII character; interface names are ASCII")
	}
	return fmt.Errorf("contains the control character or space %q", c)
}

// literal returns the set holding only c, refusing bytes that no interface
// name holds.
func literal(c byte) (charSet, error) {
	if !ifChars.has(c) {
		return charSet{}, fmt.Errorf("%q cannot appear in an interface name", c)
	}

	var s charSet
	s.add(c, c)
	return s, nil
}

// parseClass parses a character class whose '[' ends just before pat[i];
// it returns the set and the index after the closing ']'.
func parseClass(pat string, i int) (charSet, int, error) {
	negate := false
	if i < len(pat) && pat[i] == '^' {
		negate = true
		i++
	} else if i < len(pat) && pat[i] == '!' {
		return charSet{}, 0, errors.New(`"[!" does not negate here; ` +
			`write [^...] to negate, or [\!...] for a literal !`)
	}

	var set charSet
	for n := 0; ; n++ {
		if i < len(pat) && pat[i] == ']' && n > 0 {
			i++
			break
		}

		lo, hi, next, err := classRange(pat, i)
		if err != nil {
			return charSet{}, 0, err
		}
		set.add(lo, hi)
		i = next
	}

	if negate {
		return charSet{ifChars[0] &^ set[0], ifChars[1] &^ set[1]}, i, nil
	}
	return charSet{ifChars[0] & set[0], ifChars[1] & set[1]}, i, nil
}

// classRange parses "c" or "lo-hi" inside a class at pat[i].
func classRange(pat string, i int) (lo, hi byte, next int, err error) {
	if lo, i, err = classChar(pat, i); err != nil {
		return 0, 0, 0, err
	}
	hi = lo
	if pat[i] == '-' {
		if i+1 < len(pat) && pat[i+1] == ']' {
			return 0, 0, 0, fmt.Errorf("range %c- has no end; write \\- for a literal '-'", lo)
		}
		if hi, i, err = classChar(pat, i+1); err != nil {
			return 0, 0, 0, err
		}
	}

	if lo > hi {
		return 0, 0, 0, fmt.Errorf("empty range %c-%c in character class", lo, hi)
	}
	return lo, hi, i, nil
}

// classChar parses one possibly escaped character of a class; like
// path.Match it wants more pattern after it (at least the ']').
func classChar(pat string, i int) (byte, int, error) {
	if i >= len(pat) {
		return 0, 0, errUnterminated
	}
	c := pat[i]
	if c == '-' || c == ']' {
		return 0, 0, fmt.Errorf("%q must be escaped (\\%c) inside a character class", c, c)
	}
	if c == '\\' {
		i++
		if i >= len(pat) {
			return 0, 0, errUnterminated
		}
		c = pat[i]
	}
	if c < '!' || c > '~' {
		return 0, 0, badByte(c)
	}

	i++
	if i >= len(pat) {
		return 0, 0, errUnterminated
	}
	return c, i, nil
}

// minLen returns the length of the shortest name g can match.
func (g glob) minLen() int {
	n := 0
	for _, t := range g.toks {
		if !t.star {
			n++
		}
	}
	return n
}

// literalName returns the one name g matches when g has no wildcard (every
// token a single character), so that "l[o]" and "lo" count as the same.
func (g glob) literalName() (string, bool) {
	name := make([]byte, 0, len(g.toks))
	for _, t := range g.toks {
		if t.star || t.set.size() != 1 {
			return "", false
		}
		for c := byte('!'); c <= '~'; c++ {
			if t.set.has(c) {
				name = append(name, c)
			}
		}
	}

	return string(name), true
}

// closure returns the positions reached from i without reading a
// character: a star may match nothing. Stars are never adjacent.
func (g glob) closure(i int) []int {
	if i < len(g.toks) && g.toks[i].star {
		return []int{i, i + 1}
	}
	return []int{i}
}

// step returns the position after reading c at position i, or -1.
func (g glob) step(i int, c byte) int {
	switch {
	case i == len(g.toks):
		return -1
	case g.toks[i].star:
		return i
	case g.toks[i].set.has(c):
		return i + 1
	}
	return -1
}

// accepts reports whether position i, with its closure, ends a match.
func (g glob) accepts(i int) bool {
	return i == len(g.toks) || (g.toks[i].star && i+1 == len(g.toks))
}

// match reports whether g matches name; the tests compare it with
// path.Match.
func (g glob) match(name string) bool {
	cur := map[int]bool{0: true}
	for k := 0; k < len(name); k++ {
		next := map[int]bool{}
		for i := range cur {
			for _, j := range g.closure(i) {
				if s := g.step(j, name[k]); s >= 0 {
					next[s] = true
				}
			}
		}
		cur = next
	}

	for i := range cur {
		if g.accepts(i) {
			return true
		}
	}
	return false
}
