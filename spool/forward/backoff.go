package forward

import "time"

// delay returns the wait after the given number of failures in a row
// (at least one): a random time in [Min, min(Max, Min·2^failures)).
func (b Backoff) delay(failures int) time.Duration {
	ceiling := b.Min
	for i := 0; i < failures && ceiling < b.Max; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, b.Max)

	r := min(max(b.Rand(), 0), 1)
	return b.Min + time.Duration(r*float64(ceiling-b.Min))
}
