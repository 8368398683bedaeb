package spool

import "fmt"

const maxStreamName = 64

// ValidStreamName reports whether name is a valid stream name: 1 to 64
// bytes of [a-z0-9._-], starting with [a-z0-9]. Such a name is safe as a
// directory name and as a metrics label value.
func ValidStreamName(name string) bool {
	if len(name) == 0 || len(name) > maxStreamName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if alnum || i > 0 && (c == '.' || c == '_' || c == '-') {
			continue
		}
		return false
	}
	return true
}

// checkStreamName returns ErrBadStreamName wrapped with the name.
func checkStreamName(name string) error {
	if !ValidStreamName(name) {
		return fmt.Errorf("stream %q: %w", name, ErrBadStreamName)
	}
	return nil
}
