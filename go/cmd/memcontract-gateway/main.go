// Command memcontract-gateway is a transparent, pressure-aware gRPC proxy:
// it forwards every method as raw bytes to the least pressured of its
// upstreams, keeps non-core calls off an upstream at memory level 3, and
// can run a memory contract of its own.
//
//	memcontract-gateway --listen 0.0.0.0:8080 \
//	    --upstream 10.0.0.5:50051 --upstream 10.0.0.6:50051 \
//	    --core-method '/inventory.v1.InventoryService/Ping' \
//	    --contract gateway.yaml --module gateway
//
// Output on stdout, one JSON object a line: "listening" first (with the
// port bound), "upstream" and "level" lines as upstreams change, "stopped"
// (calls per upstream, edge sheds) last. --help lists every option.
package main

import (
	"os"

	"github.com/memcontract/memcontract/go/internal/gateway"
)

func main() {
	os.Exit(gateway.Main(os.Args[1:], os.Stdout, os.Stderr))
}
