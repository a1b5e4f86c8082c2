package memcontract

import "github.com/memcontract/memcontract/go/internal"

// The entry points the cross-language vector encoder (internal/cmd/vectorenc)
// and the gateway (internal/gateway) drive; not part of the API.
func init() {
	internal.EncodePairs = encodePairs
	internal.MarshalLoadReport = marshalLoadReport
	internal.PressureFromProto = pressureFromProto
	internal.FormatUsage = formatUsage
	internal.CoreMatcher = func(globs []string) func(string) bool { return newCoreMatcher(globs).Match }
}
