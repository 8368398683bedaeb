package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// parser walks the YAML tree and collects every problem it meets; each
// decoding method records its own errors and returns what it could get.
type parser struct {
	file string
	errs ErrorList

	// listeners remembers every ip:port a section listens on, so that two
	// sections (or one list) cannot claim the same socket.
	listeners map[netip.AddrPort]claim
}

// claim says which field took a listening address, for error messages.
type claim struct {
	field string
	line  int
}

// errorAt records a problem at node n.
func (p *parser) errorAt(n *yaml.Node, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{
		File:   p.file,
		Line:   n.Line,
		Column: n.Column,
		Field:  field,
		Msg:    fmt.Sprintf(format, args...),
	})
}

// rejectAliases reports every alias (*name) in the tree. Aliases are not
// supported: they would let a small file expand into a huge one, and the
// walk below never has to follow them.
func (p *parser) rejectAliases(n *yaml.Node) {
	if n.Kind == yaml.AliasNode {
		p.errorAt(n, "", "YAML aliases (*%s) are not supported; write the value out", n.Value)
		return
	}

	for _, c := range n.Content {
		p.rejectAliases(c)
	}
}

// object is a YAML mapping whose keys have been checked.
type object struct {
	node  *yaml.Node
	field string
	vals  map[string]*yaml.Node
}

// object checks that n is a mapping with only allowed keys, each at most
// once. A missing or null n is an empty object; any other kind is an error
// and gives nil.
func (p *parser) object(n *yaml.Node, field string, allowed ...string) *object {
	o := &object{node: n, field: field, vals: map[string]*yaml.Node{}}
	if n == nil || isNull(n) {
		return o
	}
	if n.Kind != yaml.MappingNode {
		p.wrongType(n, field, "a mapping")
		return nil
	}

	for i := 0; i+1 < len(n.Content); i += 2 {
		p.objectKey(o, n.Content[i], n.Content[i+1], allowed)
	}

	return o
}

// objectKey checks one key of a mapping and stores its value.
func (p *parser) objectKey(o *object, k, v *yaml.Node, allowed []string) {
	if k.Kind != yaml.ScalarNode {
		p.errorAt(k, o.field, "keys must be plain words, got %s", kindName(k))
		return
	}

	field := o.path(k.Value)
	if !slices.Contains(allowed, k.Value) {
		p.errorAt(k, field, "unknown key %q%s; allowed: %s",
			k.Value, suggest(k.Value, allowed), strings.Join(allowed, ", "))
		return
	}
	if prev, ok := o.vals[k.Value]; ok {
		p.errorAt(k, field, "key %q given twice (first at line %d)", k.Value, prev.Line)
		return
	}

	o.vals[k.Value] = v
}

// path returns the field path of key inside o.
func (o *object) path(key string) string {
	if o.field == "" {
		return key
	}
	return o.field + "." + key
}

// get returns the value of key, or nil when the mapping does not have it.
func (o *object) get(key string) *yaml.Node {
	return o.vals[key]
}

// require returns the value of key and records an error at the mapping
// when it is missing or null.
func (p *parser) require(o *object, key string) *yaml.Node {
	v := o.vals[key]
	if v != nil && !isNull(v) {
		return v
	}

	if v != nil {
		p.errorAt(v, o.path(key), "a value is required")
		return nil
	}
	where := o.node
	if where == nil || where.Line == 0 {
		return nil // the enclosing section is missing: reported there
	}
	p.errorAt(where, o.path(key), "missing (required)")
	return nil
}

// list checks that n is a sequence and returns its items. A missing or null
// n is an empty list.
func (p *parser) list(n *yaml.Node, field string) []*yaml.Node {
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.wrongType(n, field, "a list (write [a, b] or one \"- item\" per line)")
		return nil
	}

	return n.Content
}

// str returns the string in scalar n. Numbers, booleans and nulls are type
// errors: a string field wants quotes around such values.
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind == yaml.AliasNode {
		return "", false // reported by rejectAliases
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.wrongType(n, field, "a string")
		return "", false
	}

	return n.Value, true
}

// nonEmpty is str that also rejects the empty string.
func (p *parser) nonEmpty(n *yaml.Node, field string) (string, bool) {
	s, ok := p.str(n, field)
	if ok && s == "" {
		p.errorAt(n, field, "must not be empty")
		return "", false
	}

	return s, ok
}

// boolean returns the value of a YAML boolean (true or false).
func (p *parser) boolean(n *yaml.Node, field string) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.wrongType(n, field, "true or false")
		return false
	}

	b, _ := strconv.ParseBool(n.Value)
	return b
}

// enum returns the string in n when it is one of the allowed values, and
// "" after recording an error otherwise. Values are case-sensitive.
func (p *parser) enum(n *yaml.Node, field string, allowed ...string) string {
	s, ok := p.str(n, field)
	if !ok {
		return ""
	}
	if !slices.Contains(allowed, s) {
		p.errorAt(n, field, "%q is not one of %s", s, strings.Join(allowed, ", "))
		return ""
	}

	return s
}

// integer returns the integer in n when it lies in [least, most].
func (p *parser) integer(n *yaml.Node, field string, least, most int64) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.wrongType(n, field, "a whole number")
		return 0, false
	}

	v, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil || v < least || v > most {
		p.errorAt(n, field, "%s is not a whole number from %d to %d", n.Value, least, most)
		return 0, false
	}
	return v, true
}

// duration returns a positive Go duration such as "60s" or "1h30m".
func (p *parser) duration(n *yaml.Node, field string) (time.Duration, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		p.errorAt(n, field, "%s has no unit; write a duration such as %ss or %sh", n.Value, n.Value, n.Value)
		return 0, false
	}
	s, ok := p.str(n, field)
	if !ok {
		return 0, false
	}

	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorAt(n, field, "%q is not a duration (units ns, us, ms, s, m, h; e.g. 90s, 1h)", s)
		return 0, false
	}
	if d <= 0 {
		p.errorAt(n, field, "must be greater than zero, got %s", s)
		return 0, false
	}

	return d, true
}

// size returns a positive byte count written as a plain integer or with a
// unit ("512MiB", "100MB").
func (p *parser) size(n *yaml.Node, field string) (int64, bool) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		p.wrongType(n, field, "a size such as 1GiB, 512MiB, 100MB or a number of bytes")
		return 0, false
	}

	v, err := ParseSize(n.Value)
	if err != nil {
		p.errorAt(n, field, "%v", err)
		return 0, false
	}
	if v <= 0 {
		p.errorAt(n, field, "must be greater than zero")
		return 0, false
	}

	return v, true
}

// wrongType records that n is not of the wanted kind.
func (p *parser) wrongType(n *yaml.Node, field, want string) {
	if n.Kind == yaml.AliasNode {
		return // reported by rejectAliases
	}

	p.errorAt(n, field, "expected %s, got %s", want, kindName(n))
}

// isNull reports whether n is an explicit or implicit YAML null.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName describes a node for type errors.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}

	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int":
		return "the number " + n.Value
	case "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	case "!!null":
		return "nothing (null)"
	}
	return fmt.Sprintf("%q (%s)", n.Value, n.ShortTag())
}

// suggest returns ` (did you mean "x"?)` when an allowed key is close to
// the unknown one, and "" otherwise.
func suggest(key string, allowed []string) string {
	best, bestDist := "", 3
	for _, a := range allowed {
		if d := editDistance(strings.ToLower(key), a); d < bestDist {
			best, bestDist = a, d
		}
	}
	if best == "" {
		return ""
	}

	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}

	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}

	return prev[len(b)]
}

// index returns the field path of item i of the list at field.
func index(field string, i int) string {
	return fmt.Sprintf("%s[%d]", field, i)
}
