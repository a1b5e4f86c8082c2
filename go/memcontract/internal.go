package memcontract

import "github.com/memcontract/memcontract/go/internal"

// The codec entry points the cross-language vector encoder
// (internal/cmd/vectorenc) drives; not part of the API.
func init() {
	internal.EncodePairs = encodePairs
	internal.MarshalLoadReport = marshalLoadReport
}
