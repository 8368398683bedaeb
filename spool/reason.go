package spool

// DropReason names why records left the spool without being forwarded.
// The values are metric label values and never change.
type DropReason string

// Drop reasons.
const (
	// DropMaxAge: the records were older than Options.MaxAge.
	DropMaxAge DropReason = "max_age"
	// DropFull: the oldest records made room under when_full: drop_oldest,
	// for a byte cap or a full disk.
	DropFull DropReason = "full"
	// DropCorrupt: the records failed their checksum at recovery.
	DropCorrupt DropReason = "corrupt"
	// DropQuarantined: the records were in a segment that could not be read
	// and was moved aside.
	DropQuarantined DropReason = "quarantined"
	// DropMissing: the records were not found where they should be, for
	// example a segment file removed by hand.
	DropMissing DropReason = "missing"
	// DropDeadLetter: the forwarder gave up on the records (Reader.Discard).
	DropDeadLetter DropReason = "dead_letter"
)

// DropReasons lists every reason, in the order of their on-disk codes.
var DropReasons = []DropReason{
	DropMaxAge, DropFull, DropCorrupt, DropQuarantined, DropMissing, DropDeadLetter,
}

// code returns the on-disk code of r, 0 for an unknown reason.
func (r DropReason) code() uint32 {
	for i, known := range DropReasons {
		if known == r {
			return uint32(i + 1)
		}
	}
	return 0
}

// reasonFromCode maps an on-disk code back to its reason.
func reasonFromCode(c uint32) DropReason {
	if c == 0 || int(c) > len(DropReasons) {
		return "unknown"
	}
	return DropReasons[c-1]
}

// reasonIndex returns the counter slot of r, or -1.
func reasonIndex(r DropReason) int {
	return int(r.code()) - 1
}
