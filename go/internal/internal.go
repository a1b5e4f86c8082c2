// Package internal holds what package memcontract shares with the commands
// and tests of this module without exporting it, as grpc-go's internal
// package does: package memcontract sets these in its init. Each is typed
// any because this package cannot import memcontract (memcontract imports
// it); the comment gives the type to assert.
package internal

var (
	// EncodePairs is func(memcontract.Pressure) []string: the x-memory-*
	// keys and values of a pressure, in wire order.
	EncodePairs any
	// MarshalLoadReport is func(memcontract.Pressure) ([]byte, error): the
	// value of endpoint-load-metrics-bin a server sends for a pressure.
	MarshalLoadReport any
	// PressureFromProto is func(*memcontractv1.MemoryPressure)
	// (memcontract.Pressure, error): a MemoryPressure message checked and
	// converted (the gateway reads it from a shed call's status details).
	PressureFromProto any
	// FormatUsage is func(float64) string: a usage ratio as x-memory-usage
	// writes it ("68.4%").
	FormatUsage any
	// CoreMatcher is func(globs []string) func(method string) bool: the
	// contract's core_methods matcher.
	CoreMatcher any
)
