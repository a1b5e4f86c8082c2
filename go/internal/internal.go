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
)
