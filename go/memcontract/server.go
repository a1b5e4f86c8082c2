package memcontract

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/orca"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/types/known/durationpb"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// CallInfo describes one call a Server interceptor handled; it is passed to
// the observer of WithCallObserver.
type CallInfo struct {
	// Method is the full method name.
	Method string
	// Code is the call's status code.
	Code codes.Code
	// Shed reports whether the interceptor shed the call.
	Shed bool
	// Peer is the caller's pressure; PeerOK reports whether a trusted caller
	// sent any valid x-memory-* value.
	Peer   Pressure
	PeerOK bool
	// Untrusted reports that the caller sent pressure but is not trusted.
	Untrusted bool
	// Invalid is the number of invalid x-memory-* values the caller sent.
	Invalid int
	// Own is the server's pressure reported in the trailers.
	Own Pressure
}

// Server holds the server side of the protocol for one module: it reads the
// caller's pressure into the context, adds the server's keys to the trailers
// of every call, adds memory to the call's ORCA report and, at level 3, sheds
// non-core calls with codes.ResourceExhausted.
type Server struct {
	source Source
	module *memcontractv1.ModuleContract
	core   *coreMatcher
	opts   serverOptions

	shed           atomic.Int64
	invalidHeaders atomic.Int64
	untrusted      atomic.Int64
	halfOpenAdmits atomic.Int64

	creditMu sync.Mutex
	credit   float64 // half-open admission at level 3 (see sheds)

	quiet quietRule // calm is free: when the keys travel once per change
	told  teller    // per connection (the caller's address)

	// ORCA's rps_fractional and eps (fleet.go).
	calls, errors atomic.Int64
	rates         atomicRates
}

// admitter is a Source that lets a share of non-core calls through at level
// 3 (the Sampler, once level 3 is stuck: half-open shedding).
type admitter interface {
	// AdmitFraction returns the fraction of non-core calls to admit, 0 to 1.
	AdmitFraction() float64
}

// ServerOption configures NewServer.
type ServerOption func(*serverOptions)

type serverOptions struct {
	smp       orca.ServerMetricsProvider
	trust     TrustPolicy
	earlyShed bool
	onCall    func(CallInfo)
}

// WithServerMetricsProvider merges the service's own ORCA server metrics
// (CPU, QPS, ... from orca.NewServerMetricsRecorder) into the per-call
// report that ServerOptions installs and into the out-of-band stream of
// RegisterPressureServices, so one report carries both (the contract's
// fields win where both set one: see Server.ServerMetrics). Handlers add
// theirs with orca.CallMetricsRecorderFromContext.
func WithServerMetricsProvider(smp orca.ServerMetricsProvider) ServerOption {
	return func(o *serverOptions) { o.smp = smp }
}

// WithTrust sets whose reported pressure counts (default: every caller).
func WithTrust(p TrustPolicy) ServerOption {
	return func(o *serverOptions) { o.trust = p }
}

// WithEarlyShed sheds non-core calls at level 3 in the transport, before
// the request is read or a handler goroutine does any work
// (grpc.InTapHandle). grpc-go sends no trailers for such calls: the status
// carries the pushback as google.rpc.RetryInfo and the server's pressure as
// a memcontract.v1.MemoryPressure detail instead; this package's Client
// reads both. Off by default, as Python clients read only trailers.
func WithEarlyShed() ServerOption {
	return func(o *serverOptions) { o.earlyShed = true }
}

// WithCallObserver calls f after every call the interceptors handle, on the
// call's goroutine (keep it short: it delays the call's end); a panic in f is
// logged, never raised.
func WithCallObserver(f func(CallInfo)) ServerOption {
	return func(o *serverOptions) { o.onCall = f }
}

// NewServer returns a Server reporting the pressure of src under module m's
// contract (core methods, retry pushback, dry run). m is the generated
// module contract message: Contract.Module from LoadContract, or
// DefaultModule edited in code.
func NewServer(src Source, m *memcontractv1.ModuleContract, opts ...ServerOption) *Server {
	s := &Server{source: src, module: m, core: newCoreMatcher(m.GetCoreMethods()), opts: serverOptions{trust: TrustAll()}}
	s.quiet, s.told.max = quietRuleOf(m), maxTold
	for _, o := range opts {
		o(&s.opts)
	}
	return s
}

// ServerOptions returns the options that install the protocol on a
// grpc.Server, to pass before the service's own interceptors:
//
//   - orca.CallMetricsServerOption, the one writer of
//     endpoint-load-metrics-bin, with the Server as provider (its
//     ServerMetrics: the metrics of WithServerMetricsProvider, memory and
//     the call rates): do not install another (two reports are two values,
//     which grpc-go's client parser rejects);
//   - the unary and stream interceptors (memory is added to the call's ORCA
//     recorder, so the handler's own metrics and ours share one report);
//   - a handler for unknown services and methods, so that Unimplemented
//     carries the trailers too (a grpc.UnknownServiceHandler passed after
//     these options replaces it: a proxy keeps its own);
//   - with WithEarlyShed, the InTapHandle that sheds before decoding
//     (grpc-go allows one per server: a service with its own tap calls
//     TapHandle from it instead).
//
// Register services through Registrar so that calls whose request fails to
// decode carry the trailers too.
func (s *Server) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		orca.CallMetricsServerOption(s),
		grpc.ChainUnaryInterceptor(s.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(s.StreamServerInterceptor()),
		grpc.UnknownServiceHandler(unknownService),
	}
	if s.opts.earlyShed {
		opts = append(opts, grpc.InTapHandle(s.TapHandle))
	}
	return opts
}

// ShedCount returns the number of calls shed so far.
func (s *Server) ShedCount() int64 { return s.shed.Load() }

// InvalidCount returns the number of invalid x-memory-* values received.
func (s *Server) InvalidCount() int64 { return s.invalidHeaders.Load() }

// UntrustedCount returns the number of calls whose pressure was ignored
// because the caller is not trusted.
func (s *Server) UntrustedCount() int64 { return s.untrusted.Load() }

// callState is what the server decided for one call when it entered; it
// travels in the context so that the trailers are set once.
type callState struct {
	info CallInfo
	shed *status.Status
	tell bool // the call carries this server's keys and ORCA report (calm is free)
	// markAtEnd: a stream that carries the keys tells its connection (conn)
	// when it ends, as its trailers go out (a health Watch may never end).
	markAtEnd bool
	conn      string
}

type callStateKey struct{}

// PeerPressureFromContext returns the caller's pressure as parsed by the
// server interceptor for the current call; ok is false when the caller sent
// no valid x-memory-* value or is not trusted.
func PeerPressureFromContext(ctx context.Context) (p Pressure, ok bool) {
	st, _ := ctx.Value(callStateKey{}).(*callState)
	if st == nil {
		return Pressure{}, false
	}
	return st.info.Peer, st.info.PeerOK
}

// InvalidPeerValuesFromContext returns the number of invalid x-memory-*
// values the caller of the current call sent.
func InvalidPeerValuesFromContext(ctx context.Context) int {
	st, _ := ctx.Value(callStateKey{}).(*callState)
	if st == nil {
		return 0
	}
	return st.info.Invalid
}

// enter parses the caller's keys, snapshots the server's pressure, decides
// whether to shed and sets the trailers (once per call: a context that
// already holds the state is returned as it is). Streams follow the calm
// rule as unary calls do (a proxy's every call is a stream) but tell their
// connection only when they end, when their trailers go out; a reflection
// call tells no connection, so the call grpcurl makes after its reflection
// stream still shows the keys.
func (s *Server) enter(ctx context.Context, method string, stream bool) (context.Context, *callState) {
	if st, ok := ctx.Value(callStateKey{}).(*callState); ok {
		return ctx, st
	}
	peerP, peerOK, invalid := Decode(incomingKeys(ctx))
	if invalid > 0 {
		s.invalidHeaders.Add(int64(invalid))
	}
	st := &callState{info: CallInfo{Method: method, Invalid: invalid, Own: s.source.Pressure()}}
	st.info.Own.Instance = processInstance // the server names itself: clients tell backends apart
	if peerOK {
		if s.opts.trust.Trusts(ctx) {
			st.info.Peer, st.info.PeerOK = peerP, true
		} else {
			st.info.Untrusted = true
			s.untrusted.Add(1)
			processCounts.untrusted.Add(1)
		}
	}
	trailer := metadata.MD{}
	st.conn = connection(ctx)
	if s.tells(st.conn, st.info.Own, !stream) {
		trailer, st.tell = encode(st.info.Own), true
		st.markAtEnd = stream && st.conn != "" && !strings.HasPrefix(method, reflectionPrefix)
	}
	if s.sheds(st.info.Own, method) {
		s.shed.Add(1)
		processCounts.shed[classNonCore].Add(1)
		trailer.Set(RetryPushbackKey, strconv.FormatUint(uint64(s.module.GetRetryPushbackMs()), 10))
		st.shed = s.shedStatus(st.info.Own, method)
		st.info.Shed = true
	} else if st.info.Own.Level == LevelCritical && s.module.GetDryRun() && !s.core.Match(method) {
		processCounts.wouldShed[classNonCore].Add(1)
	}
	// Trailers go out with every status: OK, error, decode failure and shed
	// alike. Only the server's own level sheds: a caller's header never does.
	if len(trailer) > 0 {
		_ = grpc.SetTrailer(ctx, trailer)
	}
	return context.WithValue(ctx, callStateKey{}, st), st
}

// sheds reports whether a call is shed now (level 3, not core, not dry
// run). While level 3 sheds half-open every call adds the admitted fraction
// to a credit and a call that brings it to 1 is admitted: exactly that
// fraction, evenly spread, no random draw (as the Python server).
func (s *Server) sheds(own Pressure, method string) bool {
	if own.Level < LevelCritical || s.core.Match(method) || s.module.GetDryRun() {
		return false
	}
	a, ok := s.source.(admitter)
	if !ok {
		return true
	}
	admit := a.AdmitFraction()
	if admit <= 0 {
		return true
	}
	s.creditMu.Lock()
	defer s.creditMu.Unlock()
	s.credit += admit
	if s.credit >= 1 {
		s.credit--
		s.halfOpenAdmits.Add(1)
		processCounts.halfOpen.Add(1)
		return false
	}
	return true
}

// HalfOpenAdmits returns the number of non-core calls admitted at level 3
// while shedding half-open.
func (s *Server) HalfOpenAdmits() int64 { return s.halfOpenAdmits.Load() }

func (s *Server) shedStatus(own Pressure, method string) *status.Status {
	return status.Newf(codes.ResourceExhausted,
		"memcontract: module %q is at memory level %d (%s): non-core call %s shed",
		s.module.GetName(), int(own.Level), own.Level, method)
}

// recordORCA adds memory as the call entered to the call's ORCA recorder
// (installed by orca.CallMetricsServerOption), beside what the handler
// records; grpc-go merges the recorder over ServerMetrics, which adds the
// service's own metrics and the call rates. Only on a call that carries the
// keys: grpc-go writes endpoint-load-metrics-bin only when someone asked for
// the recorder, so a quiet server's other calls carry no report (calm is
// free, as in Python; a handler that records its own metrics still sends).
func (s *Server) recordORCA(ctx context.Context, st *callState) {
	if !st.tell {
		return
	}
	own := st.info.Own
	if r := orca.CallMetricsRecorderFromContext(ctx); r != nil {
		r.SetMemoryUtilization(memUtilization(own))
		if s.reportsMemory() {
			r.SetApplicationUtilization(appUtilization(own))
		}
		r.SetNamedMetric(LevelMetricName, float64(own.Level))
		r.SetNamedMetric(AllocRateRatioMetricName, own.AllocRateRatio)
	}
}

func (s *Server) done(st *callState, err error) {
	s.countCall()
	if err != nil {
		s.countError()
	}
	if s.opts.onCall != nil {
		info := st.info
		info.Code = status.Code(err)
		runHook("call hook", func() { s.opts.onCall(info) })
	}
}

// UnaryServerInterceptor returns the unary server interceptor. Install it
// inside orca.CallMetricsServerOption (see ServerOptions).
func (s *Server) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		ctx, st := s.enter(ctx, info.FullMethod, false)
		defer func() { s.done(st, err) }()
		s.recordORCA(ctx, st)
		if st.shed != nil {
			return nil, st.shed.Err()
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the stream server interceptor. Install it
// inside orca.CallMetricsServerOption (see ServerOptions).
func (s *Server) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		ctx, st := s.enter(ss.Context(), info.FullMethod, true)
		defer func() {
			if st.markAtEnd {
				s.told.mark(st.conn, s.version(st.info.Own), st.info.Own.SampledAt, RefreshInterval)
			}
			s.done(st, err)
		}()
		s.recordORCA(ctx, st)
		if st.shed != nil {
			return st.shed.Err()
		}
		return handler(srv, &serverStream{ServerStream: ss, ctx: ctx})
	}
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

// unknownService answers methods no service registered, as grpc-go does,
// but through the stream interceptor, so the answer carries the trailers.
func unknownService(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	return status.Errorf(codes.Unimplemented, "unknown method %s", method)
}

// TapHandle sheds non-core calls at level 3 before the transport reads the
// request (see WithEarlyShed). It runs on the transport's goroutine and only
// reads the cached snapshot.
func (s *Server) TapHandle(ctx context.Context, info *tap.Info) (context.Context, error) {
	own := s.source.Pressure()
	own.Instance = processInstance
	if !s.sheds(own, info.FullMethodName) {
		return ctx, nil
	}
	s.shed.Add(1)
	processCounts.shed[classNonCore].Add(1)
	s.countCall()
	s.countError()
	pushback := time.Duration(s.module.GetRetryPushbackMs()) * time.Millisecond
	st, err := s.shedStatus(own, info.FullMethodName).WithDetails(
		&errdetails.RetryInfo{RetryDelay: durationpb.New(pushback)}, own.Proto())
	if err != nil {
		return ctx, s.shedStatus(own, info.FullMethodName).Err()
	}
	return ctx, st.Err()
}

// Registrar wraps reg so that the services registered through it set the
// call's trailers before the request is decoded: a request that fails to
// decode (which no interceptor sees) still carries them.
//
//	inventoryv1.RegisterInventoryServiceServer(mc.Registrar(grpcServer), impl)
func (s *Server) Registrar(reg grpc.ServiceRegistrar) grpc.ServiceRegistrar {
	return registrar{reg: reg, s: s}
}

type registrar struct {
	reg grpc.ServiceRegistrar
	s   *Server
}

func (r registrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		method, handler := "/"+desc.ServiceName+"/"+m.MethodName, m.Handler
		d.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			ctx, _ = r.s.enter(ctx, method, false)
			return handler(srv, ctx, dec, interceptor)
		}}
	}
	r.reg.RegisterService(&d, impl)
}

// tells reports whether this call's trailers carry the server's keys: every
// call at level 1 and up; quiet, a connection's first call, after a change
// and every RefreshInterval (calm is free).
func (s *Server) tells(conn string, own Pressure, mark bool) bool {
	if conn == "" {
		return true
	}
	return s.told.tells(conn, s.version(own), own.SampledAt, RefreshInterval, mark)
}

// version is what this server's keys and ORCA report say now (calm is free;
// the error ratio matters only while quiet: otherwise every call tells).
func (s *Server) version(own Pressure) wireVersion {
	v := s.quiet.version(own)
	if v.quiet {
		v.errors = errorRatio(s.CallRates())
	}
	return v
}

// connection names the call's connection by its peer address ("" when
// grpc-go gives none).
func connection(ctx context.Context) string {
	if from, ok := peer.FromContext(ctx); ok && from.Addr != nil {
		return from.Addr.String()
	}
	return ""
}

// reflectionPrefix starts the methods of gRPC's reflection services (v1 and
// v1alpha).
const reflectionPrefix = "/grpc.reflection."

// incomingKeys returns the caller's x-memory-* keys, looked up one by one:
// metadata.FromIncomingContext copies every header of every call.
func incomingKeys(ctx context.Context) metadata.MD {
	var md metadata.MD
	for _, k := range peerKeys {
		if v := metadata.ValueFromIncomingContext(ctx, k); len(v) > 0 {
			if md == nil {
				md = metadata.MD{}
			}
			md[k] = v
		}
	}
	return md
}

// peerKeys are the keys Decode reads.
var peerKeys = [...]string{UsageKey, CapacityKey, ContractKey, LevelKey, PressureBinKey}
