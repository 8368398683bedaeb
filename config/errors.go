package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a config file.
//
// Line and Column are 1-based; 0 means unknown (YAML syntax errors carry
// a line but no column, an empty file carries neither). Field is the path
// of the offending key or value, such as "endpoints[1].ports[0]"; it is
// empty when the problem is not tied to a key.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

// Error formats the problem as "FILE:LINE:COL: FIELD: MSG", leaving out
// the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder

	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}

	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)

	return b.String()
}

// ErrorList is every problem found in one config file, in file order.
// Parse returns it as its error; use errors.As to get at the entries.
type ErrorList []*Error

// Error formats the problems one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the entries so that errors.As finds an *Error.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sort orders the problems by position; problems found by cross-checks
// are reported after the walk, this puts them back where they belong.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}
