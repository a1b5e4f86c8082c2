package gateway

import (
	"context"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/memcontract/memcontract/go/memcontract"
)

// Director decides where a call goes and with which request metadata: the
// routing half of the gateway, kept apart from the code that copies bytes
// (mwitkow/grpc-proxy's StreamDirector). The ClientConn returned spans every
// upstream; its picker chooses one per call.
type Director func(ctx context.Context, method string) (context.Context, *grpc.ClientConn, error)

// hopByHop are the request keys never copied to the upstream: HTTP/2
// connection-specific headers (RFC 9113 §8.2.2), pseudo-headers, and what
// gRPC sets itself for each hop (the upstream call gets its own).
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "te": true,
	"transfer-encoding": true, "upgrade": true, "host": true,
	"user-agent": true, "content-type": true, "grpc-timeout": true, "grpc-encoding": true,
	"grpc-accept-encoding": true,
}

// ownKeys are the hop-by-hop keys every gRPC client sends: stripped without
// being counted (counting them would only count calls).
var ownKeys = map[string]bool{
	"user-agent": true, "content-type": true, "te": true, "grpc-timeout": true,
	"grpc-encoding": true, "grpc-accept-encoding": true,
}

// stripCounts counts the request keys the director dropped.
type stripCounts struct {
	hopByHop  atomic.Int64 // connection-specific keys a client should not have sent
	untrusted atomic.Int64 // x-memory-* keys of clients not trusted
}

// newDirector returns the routing function over conn: request metadata minus
// hop-by-hop keys, and minus x-memory-* unless the client is trusted.
func newDirector(conn *grpc.ClientConn, trust memcontract.TrustPolicy, trustAll bool, counts *stripCounts) Director {
	return func(ctx context.Context, _ string) (context.Context, *grpc.ClientConn, error) {
		in, _ := metadata.FromIncomingContext(ctx)
		out := make(metadata.MD, len(in))
		memory := false
		for k, v := range in {
			if hopByHop[k] || strings.HasPrefix(k, ":") {
				if !ownKeys[k] && !strings.HasPrefix(k, ":") {
					counts.hopByHop.Add(1)
				}
				continue
			}
			memory = memory || strings.HasPrefix(k, memoryKeyPrefix)
			out[k] = v
		}
		if memory && !trustAll && !trust.Trusts(ctx) {
			for k := range out {
				if strings.HasPrefix(k, memoryKeyPrefix) {
					delete(out, k)
					counts.untrusted.Add(1)
				}
			}
		}
		return metadata.NewOutgoingContext(ctx, out), conn, nil
	}
}
