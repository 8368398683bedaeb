package config

import "go.yaml.in/yaml/v3"

// disjointKind describes a list whose entries may not overlap: CIDR lists
// and port sets both decode this way.
type disjointKind[T comparable] struct {
	example  string // a sample entry for the "list is empty" message
	parse    func(string) (T, error)
	check    func(T) error // optional extra rule on a parsed entry
	overlaps func(a, b T) bool
	noun     string // prefix for the duplicate/overlap messages, e.g. "port set "
	advice   string // what to do about an overlap
}

// disjointList decodes the list at n: every item must parse, pass
// kind.check and overlap no earlier item. Each bad item is reported at its
// own line (an overlap names the line of the earlier entry) and left out.
// required says whether an empty list is an error.
func disjointList[T comparable](p *parser, n *yaml.Node, field string, required bool, kind disjointKind[T]) []T {
	items := p.list(n, field)
	if required && len(items) == 0 {
		p.emptyList(n, field, kind.example)
	}

	var out []T
	var nodes []*yaml.Node
	for i, item := range items {
		f := index(field, i)
		v, ok := parseItem(p, item, f, kind)
		if !ok {
			continue
		}

		if j := firstOverlap(out, v, kind.overlaps); j >= 0 {
			reportOverlap(p, item, f, v, out[j], nodes[j], kind)
			continue
		}
		out = append(out, v)
		nodes = append(nodes, item)
	}

	return out
}

// parseItem decodes one list entry, reporting why it is refused.
func parseItem[T comparable](p *parser, item *yaml.Node, field string, kind disjointKind[T]) (T, bool) {
	var zero T
	s, ok := p.str(item, field)
	if !ok {
		return zero, false
	}

	v, err := kind.parse(s)
	if err == nil && kind.check != nil {
		err = kind.check(v)
	}
	if err != nil {
		p.errorAt(item, field, "%v", err)
		return zero, false
	}
	return v, true
}

// firstOverlap returns the index of the first entry of vs that overlaps v,
// or -1.
func firstOverlap[T any](vs []T, v T, overlaps func(a, b T) bool) int {
	for i, o := range vs {
		if overlaps(o, v) {
			return i
		}
	}
	return -1
}

// reportOverlap reports a duplicate or overlapping entry, naming the line
// of the earlier one.
func reportOverlap[T comparable](p *parser, n *yaml.Node, field string, v, prev T, prevNode *yaml.Node, kind disjointKind[T]) {
	if v == prev {
		p.errorAt(n, field, "duplicate %s%v (already at line %d)", kind.noun, v, prevNode.Line)
		return
	}

	p.errorAt(n, field, "%s%v overlaps %v (line %d); %s", kind.noun, v, prev, prevNode.Line, kind.advice)
}
