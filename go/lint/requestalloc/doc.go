// Package requestalloc defines an Analyzer that reports allocations sized by
// request data inside gRPC handlers.
//
// # Analyzer requestalloc
//
// requestalloc: report allocations sized by request data in gRPC handlers (MC003)
//
// A handler that allocates as much memory as a field of the request asks for
// lets one caller take the process past its memory contract in one call,
// faster than the guard samples. The check reports, inside a handler,
// make([]T, n) or make([]T, 0, n), bytes.Repeat and strings.Repeat whose
// size derives from the request message:
//
//	func (s *Service) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
//		buf := make([]byte, req.GetSize())        // reported
//		n := min(req.GetSize(), 1<<20)
//		buf = make([]byte, n)                     // bounded: not reported
//
// A handler is a method shaped like generated gRPC service code: unary
// (ctx context.Context, req *Req) (*Resp, error), server streaming
// (req *Req, stream S) error, and client or bidirectional streaming
// (stream S) error, where what stream.Recv() returns is request data.
// Request data flows through local variables, conversions, field reads and
// calls (len(req.Items), int(req.GetCount())); min(x, bound) bounds it when
// the bound is not request data, and so does an early exit, wherever it is in
// the handler:
//
//	if n > maxSize {
//		return nil, status.Error(codes.InvalidArgument, "too large")
//	}
//
// (a return, panic, break or continue ending an if whose condition is true
// when the value is too large). Checks made in another function are not seen.
package requestalloc
