package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits maps the accepted unit suffixes to their number of bytes:
// decimal (KB, MB, GB, TB) and binary (KiB, MiB, GiB, TiB).
var sizeUnits = map[string]int64{
	"":    1,
	"B":   1,
	"KB":  1e3,
	"MB":  1e6,
	"GB":  1e9,
	"TB":  1e12,
	"KiB": 1 << 10,
	"MiB": 1 << 20,
	"GiB": 1 << 30,
	"TiB": 1 << 40,
}

// ParseSize parses a byte count: a plain integer ("1048576") or an integer
// with a unit ("512MiB", "100MB", "1 GiB"). Units are case-sensitive:
// B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (powers of
// 1024). Fractions, negative numbers and values over 2^63-1 are refused.
func ParseSize(s string) (int64, error) {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	digits, unit := s[:i], strings.TrimPrefix(s[i:], " ")
	if digits == "" {
		return 0, fmt.Errorf("%q is not a size such as 1GiB, 512MiB, 100MB or a number of bytes", s)
	}

	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}

	return n * mult, nil
}
