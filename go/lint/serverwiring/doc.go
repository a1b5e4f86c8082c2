// Package serverwiring defines an Analyzer that reports gRPC servers built
// without memcontract's server options.
//
// # Analyzer serverwiring
//
// serverwiring: report grpc.NewServer calls without memcontract (MC001)
//
// A grpc.Server that does not get the options of
// (*memcontract.Server).ServerOptions neither reports its memory pressure to
// its callers (x-memory-* trailers, ORCA's endpoint-load-metrics-bin) nor
// sheds non-core calls at level 3, so its callers cannot back off before it
// runs out of memory. The check follows the options into the call: a direct
// srv.ServerOptions()... argument, or a local []grpc.ServerOption variable
// built from it (append, reassignment) counts as wired:
//
//	s := grpc.NewServer()                              // reported
//	s := grpc.NewServer(srv.ServerOptions()...)        // wired
//	opts := append(srv.ServerOptions(), grpc.MaxRecvMsgSize(1<<20))
//	s := grpc.NewServer(opts...)                       // wired
//
// Installing only memcontract's unary or stream interceptor is reported too:
// ServerOptions also installs the ORCA per-call recorder and both chains.
// Options that arrive from elsewhere (a parameter, another function's
// result) cannot be followed and are not reported.
package serverwiring
