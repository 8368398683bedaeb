package config

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// DNS name limits of RFC 1035, counted without the trailing dot.
const (
	maxDNSName  = 253
	maxDNSLabel = 63
)

// CanonicalName checks a DNS name and returns its canonical form: lower
// case, without the trailing dot. With wildcard set it also accepts the
// allowlist grammar: "*.zone" (exactly one label before zone) and
// "**.zone" (one or more), the wildcard only as the whole leftmost label.
//
// Labels are 1-63 characters of letters, digits, '-' and '_', and do not
// begin or end with '-'; the name is at most 253 characters. Unicode
// labels are converted to their punycode (xn--) form first, so
// "bücher.example" is "xn--bcher-kva.example"; a label IDNA refuses is an
// error.
func CanonicalName(s string, wildcard bool) (string, error) {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return "", errors.New("empty name (the root zone cannot be listed)")
	}
	name, err := toASCII(name)
	if err != nil {
		return "", err
	}
	if len(name) > maxDNSName {
		return "", fmt.Errorf("name is %d characters long; at most %d", len(name), maxDNSName)
	}

	name = strings.ToLower(name)
	labels := strings.Split(name, ".")
	if err := checkWildcard(labels, wildcard); err != nil {
		return "", err
	}
	for _, l := range labels[wildcardLabels(labels):] {
		if err := checkLabel(l); err != nil {
			return "", err
		}
	}

	return name, nil
}

// toASCII converts the labels of an internationalised name to their
// punycode (xn--) form, with the IDNA lookup rules; ASCII labels and
// wildcard labels pass unchanged. A label IDNA refuses is an error.
func toASCII(name string) (string, error) {
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if isASCII(l) {
			continue
		}
		a, err := idna.Lookup.ToASCII(l)
		if err != nil {
			return "", fmt.Errorf("label %q is not a valid internationalised name: %v", l, err)
		}
		labels[i] = a
	}
	return strings.Join(labels, "."), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// checkWildcard checks where '*' appears in labels.
func checkWildcard(labels []string, allowed bool) error {
	for i, l := range labels {
		if !strings.Contains(l, "*") {
			continue
		}
		if !allowed {
			return errors.New("wildcards are not allowed here")
		}
		if i > 0 || (l != "*" && l != "**") {
			return errors.New(`a wildcard may only be the whole leftmost label: "*.zone" or "**.zone"`)
		}
		if len(labels) == 1 {
			return fmt.Errorf("%q needs a zone after it, e.g. %s.example.com", l, l)
		}
	}
	return nil
}

// wildcardLabels returns 1 when the first label is a wildcard, else 0.
func wildcardLabels(labels []string) int {
	if labels[0] == "*" || labels[0] == "**" {
		return 1
	}
	return 0
}

// checkLabel checks one label of a DNS name.
func checkLabel(l string) error {
	switch {
	case l == "":
		return errors.New("empty label (two dots in a row, or a leading dot)")
	case len(l) > maxDNSLabel:
		return fmt.Errorf("label %q is %d characters long; at most %d", l, len(l), maxDNSLabel)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q begins or ends with '-'", l)
	}

	for _, c := range []byte(l) {
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf("label %q holds %q; use letters, digits, '-' and '_'", l, c)
		}
	}
	return nil
}

// nameZone returns the zone part of a canonical allowlist entry: the name
// without its wildcard label.
func nameZone(match string) string {
	if rest, ok := strings.CutPrefix(match, "**."); ok {
		return rest
	}
	if rest, ok := strings.CutPrefix(match, "*."); ok {
		return rest
	}
	return match
}

// inZone reports whether name is zone or below it; both canonical.
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}
