package dnsguard

import "sync/atomic"

// result is how one query ended; each is one fixed value of the
// edgeward_dns_queries_total label "result".
type result int

const (
	resultAllowed       result = iota // addresses learned, answer released
	resultForwarded                   // answer released with nothing to learn (NXDOMAIN, NODATA, other types)
	resultDenied                      // name off the allowlist: deny_response
	resultRefused                     // client outside the ACL: REFUSED
	resultMalformed                   // not a single IN question, or not a QUERY
	resultOverloaded                  // too many queries in flight: SERVFAIL
	resultUpstreamError               // no upstream server answered usefully: SERVFAIL
	resultPublicAnswer
	resultPrivateAnswer
	resultBadAnswer
	resultTruncated
	resultLearnFailed
	numResults
)

// resultNames are the label values, indexed by result.
var resultNames = [numResults]string{
	resultAllowed:       "allowed",
	resultForwarded:     "forwarded",
	resultDenied:        "denied",
	resultRefused:       "refused",
	resultMalformed:     "malformed",
	resultOverloaded:    "overloaded",
	resultUpstreamError: "upstream_error",
	resultPublicAnswer:  "rejected_" + ReasonPublicAnswer,
	resultPrivateAnswer: "rejected_" + ReasonPrivateAnswer,
	resultBadAnswer:     "rejected_" + ReasonBadAnswer,
	resultTruncated:     "rejected_" + ReasonTruncated,
	resultLearnFailed:   "rejected_" + ReasonLearnFailed,
}

// rejection maps a reason to its result.
func rejection(reason string) result {
	switch reason {
	case ReasonPublicAnswer:
		return resultPublicAnswer
	case ReasonPrivateAnswer:
		return resultPrivateAnswer
	case ReasonTruncated:
		return resultTruncated
	case ReasonLearnFailed:
		return resultLearnFailed
	}
	return resultBadAnswer
}

// String returns the metric label of r.
func (r result) String() string {
	return resultNames[r]
}

// counters counts queries per result; safe for concurrent use.
type counters [numResults]atomic.Uint64

// Counts returns how many queries ended with each result, keyed by the
// label value of edgeward_dns_queries_total. Every result is present.
func (g *Guard) Counts() map[string]uint64 {
	out := make(map[string]uint64, numResults)
	for r := range numResults {
		out[r.String()] = g.counts[r].Load()
	}
	return out
}
