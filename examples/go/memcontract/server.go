package memcontract

import (
	"context"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/orca"
	"google.golang.org/grpc/status"

	memcontractv1 "github.com/memcontract/memcontract/examples/go/gen/memcontract/v1"
)

// CallInfo describes one call a Server interceptor handled; it is passed to
// the OnCall hook.
type CallInfo struct {
	// Method is the full method name.
	Method string
	// Code is the call's status code.
	Code codes.Code
	// Shed reports whether the interceptor shed the call.
	Shed bool
	// Peer is the caller's pressure; PeerOK reports whether the caller sent
	// any valid x-memory-* value.
	Peer   Pressure
	PeerOK bool
	// Invalid is the number of invalid x-memory-* values the caller sent.
	Invalid int
	// Own is the server's pressure reported in the trailers.
	Own Pressure
}

// Server holds the server side of the protocol for one module: its
// interceptors read the caller's pressure into the context, add the server's
// keys and ORCA report to the trailers of every call and shed non-core calls
// at level 3.
type Server struct {
	source Source
	module *memcontractv1.ModuleContract
	core   *CoreMatcher

	// OnCall, when set before serving, is called after every call.
	OnCall func(CallInfo)

	shed           atomic.Int64
	invalidHeaders atomic.Int64

	// ORCA's rps_fractional and eps (fleet.go).
	calls, errors atomic.Int64
	rates         atomicRates
}

// NewServer returns a Server reporting the pressure of src under module m's
// contract (core methods, retry pushback, dry run).
func NewServer(src Source, m *memcontractv1.ModuleContract) *Server {
	return &Server{source: src, module: m, core: NewCoreMatcher(m.GetCoreMethods())}
}

// ServerOptions returns the options that install the protocol on a
// grpc.Server: grpc-go's ORCA per-call metrics recorder (the one writer of
// endpoint-load-metrics-bin) and, inside it, the unary and stream
// interceptors. Pass them before any other interceptor options.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		orca.CallMetricsServerOption(nil),
		grpc.ChainUnaryInterceptor(s.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(s.StreamServerInterceptor()),
	}
}

// ShedCount returns the number of calls shed so far.
func (s *Server) ShedCount() int64 { return s.shed.Load() }

// InvalidCount returns the number of invalid x-memory-* values received.
func (s *Server) InvalidCount() int64 { return s.invalidHeaders.Load() }

type peerKey struct{}

type peerValue struct {
	p       Pressure
	ok      bool
	invalid int
}

// PeerPressureFromContext returns the caller's pressure as parsed by the
// server interceptor for the current call; ok is false when the caller sent
// no valid x-memory-* value.
func PeerPressureFromContext(ctx context.Context) (p Pressure, ok bool) {
	v, _ := ctx.Value(peerKey{}).(peerValue)
	return v.p, v.ok
}

// InvalidPeerValuesFromContext returns the number of invalid x-memory-*
// values the caller of the current call sent.
func InvalidPeerValuesFromContext(ctx context.Context) int {
	v, _ := ctx.Value(peerKey{}).(peerValue)
	return v.invalid
}

// begin parses the caller's keys, snapshots the server's pressure, records
// ORCA metrics and decides whether to shed.
func (s *Server) begin(ctx context.Context, method string) (context.Context, Pressure, metadata.MD, *status.Status, CallInfo) {
	md, _ := metadata.FromIncomingContext(ctx)
	peerP, peerOK, invalid := Decode(md)
	if invalid > 0 {
		s.invalidHeaders.Add(int64(invalid))
	}
	ctx = context.WithValue(ctx, peerKey{}, peerValue{p: peerP, ok: peerOK, invalid: invalid})
	own := s.source.Pressure()
	s.countCall()
	if r := orca.CallMetricsRecorderFromContext(ctx); r != nil {
		s.recordLoad(r, own)
		r.SetNamedMetric(LevelMetricName, float64(own.Level))
		r.SetNamedMetric(AllocRateRatioMetricName, own.AllocRateRatio)
	}
	trailer := Encode(own)
	info := CallInfo{Method: method, Peer: peerP, PeerOK: peerOK, Invalid: invalid, Own: own}
	var st *status.Status
	if own.Level >= LevelCritical && !s.core.Match(method) && !s.module.GetDryRun() {
		s.shed.Add(1)
		trailer.Set(RetryPushbackKey, strconv.FormatUint(uint64(s.module.GetRetryPushbackMs()), 10))
		st = status.Newf(codes.ResourceExhausted,
			"memcontract: module %q is at memory level %d (%s): non-core call %s shed",
			s.module.GetName(), int(own.Level), own.Level, method)
		info.Shed = true
	}
	return ctx, own, trailer, st, info
}

func (s *Server) done(info CallInfo, err error) {
	if err != nil {
		s.countError()
	}
	if s.OnCall != nil {
		info.Code = status.Code(err)
		s.OnCall(info)
	}
}

// UnaryServerInterceptor returns the unary server interceptor. Install it
// inside orca.CallMetricsServerOption (see ServerOptions).
func (s *Server) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		ctx, _, trailer, st, ci := s.begin(ctx, info.FullMethod)
		defer func() { s.done(ci, err) }()
		// Trailers go out with every status: OK, error and shed alike.
		_ = grpc.SetTrailer(ctx, trailer)
		if st != nil {
			return nil, st.Err()
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the stream server interceptor. Install it
// inside orca.CallMetricsServerOption (see ServerOptions).
func (s *Server) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		ctx, _, trailer, st, ci := s.begin(ss.Context(), info.FullMethod)
		defer func() { s.done(ci, err) }()
		ss.SetTrailer(trailer)
		if st != nil {
			return st.Err()
		}
		return handler(srv, &serverStream{ServerStream: ss, ctx: ctx})
	}
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }
