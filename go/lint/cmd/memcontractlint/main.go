// Command memcontractlint runs memcontract's analyzers: gRPC servers built
// without memcontract's server options (MC001, serverwiring) and allocations
// sized by request data in handlers (MC003, requestalloc).
//
// Standalone, on package patterns:
//
//	memcontractlint ./...
//
// As a vet tool (the go command builds and caches the analysis per package):
//
//	go install github.com/memcontract/memcontract/go/lint/cmd/memcontractlint@latest
//	go vet -vettool=$(go env GOPATH)/bin/memcontractlint ./...
//
// A finding is suppressed by fixing it, or with a comment at the end of its
// line or alone on the line above, which must give a reason; a suppression
// that suppresses nothing is reported as MC902:
//
//	buf := make([]byte, req.GetSize()) //memcontract:ignore MC003 size checked by the caller
package main

import (
	"golang.org/x/tools/go/analysis/multichecker"

	"github.com/memcontract/memcontract/go/lint/requestalloc"
	"github.com/memcontract/memcontract/go/lint/serverwiring"
)

func main() {
	multichecker.Main(serverwiring.Analyzer, requestalloc.Analyzer)
}
