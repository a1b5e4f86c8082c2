package memcontract

import (
	"context"
	"maps"
	"math"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/orca"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// Fleet-wide balancing (SPEC §9b): the ORCA report's application
// utilization and call rates, and the out-of-band services.

// UtilizationNone is the orca.application_utilization value that leaves
// application_utilization out of the ORCA report.
const UtilizationNone = "none"

// UtilizationMemory is the default orca.application_utilization value: the
// memory usage ratio.
const UtilizationMemory = "memory"

// RatesHeadroom and RatesCalls are the orca.rates values: the memory
// headroom and headroom times the error ratio (the default, so that a
// balancer's shares follow memory and return to even when pressure goes),
// or calls and errors per second as measured.
const (
	RatesCalls    = "calls"
	RatesHeadroom = "headroom"
)

// MinWatchInterval is the shortest interval WatchPressure honours.
const MinWatchInterval = 100 * time.Millisecond

// AppUtilization returns the usage ratio as ORCA's application_utilization:
// not clamped above (over budget reads above 1), 0 when negative or not
// finite.
func AppUtilization(p Pressure) float64 {
	if math.IsNaN(p.UsageRatio) || math.IsInf(p.UsageRatio, 0) {
		return 0
	}
	return math.Max(p.UsageRatio, 0)
}

// callRates is one window of the call counters: the counts at its start and
// the rates of the window before it.
type callRates struct {
	at            time.Time
	calls, errors int64
	rps, eps      float64
}

// CallRates returns the calls and errors per second the interceptors counted
// over the last complete window of sample_interval_ms (ORCA's rps_fractional
// and eps). A call costs two atomic adds; the rates are recomputed by the
// first reader after a window ends.
func (s *Server) CallRates() (rps, eps float64) {
	now := time.Now()
	cur := s.rates.Load()
	window := time.Duration(max(s.module.GetSampleIntervalMs(), 1)) * time.Millisecond
	if cur != nil && now.Sub(cur.at) < window {
		return cur.rps, cur.eps
	}
	next := &callRates{at: now, calls: s.calls.Load(), errors: s.errors.Load()}
	if cur != nil {
		dt := now.Sub(cur.at).Seconds()
		next.rps = float64(next.calls-cur.calls) / dt
		next.eps = float64(next.errors-cur.errors) / dt
	}
	if !s.rates.CompareAndSwap(cur, next) {
		next = s.rates.Load()
	}
	return next.rps, next.eps
}

// reportsMemory reports whether application_utilization carries the memory
// usage ratio (the contract's orca.application_utilization is not "none").
func (s *Server) reportsMemory() bool {
	return s.module.GetOrca().GetApplicationUtilization() != UtilizationNone
}

// MinHeadroom is the least headroom orca.rates "headroom" reports: a zero
// rate would make balancers ignore the report.
const MinHeadroom = 0.01

func headroom(p Pressure) float64 {
	if math.IsNaN(p.UsageRatio) || math.IsInf(p.UsageRatio, 0) {
		return 1
	}
	return math.Max(1-p.UsageRatio, MinHeadroom)
}

func errorRatio(rps, eps float64) float64 {
	if rps <= 0 {
		return 0
	}
	return eps / rps
}

// ServerMetrics implements orca.ServerMetricsProvider: the service's own
// metrics (WithServerMetricsProvider) with the contract's fields set over
// them: mem_utilization, application_utilization (unless orca
// application_utilization is "none") and the call rates. Under rates
// "calls" a service that reports its own qps or eps keeps them; under
// "headroom" the rates are always the headroom's, as the balancer's weight
// must follow memory. It is the provider of both the per-call report
// (ServerOptions, where the interceptor's snapshot and the handler's
// metrics are merged over it) and the out-of-band stream
// (RegisterPressureServices). It reads cached values only.
func (s *Server) ServerMetrics() *orca.ServerMetrics {
	sm := s.serviceMetrics()
	p := s.source.Pressure()
	sm.MemUtilization = MemUtilization(p)
	if s.reportsMemory() {
		sm.AppUtilization = AppUtilization(p)
	}
	rps, eps := s.CallRates()
	if s.module.GetOrca().GetRates() != RatesCalls { // empty is the default, headroom
		// The headroom and headroom times the error ratio: the balancer's
		// weight then depends on memory and errors only (see the proto's
		// OrcaOptions.rates).
		h := headroom(p)
		sm.QPS, sm.EPS = h, h*errorRatio(rps, eps)
		return sm
	}
	if sm.QPS == unsetMetric {
		sm.QPS = rps
	}
	if sm.EPS == unsetMetric {
		sm.EPS = eps
	}
	return sm
}

// unsetMetric marks a field of orca.ServerMetrics that is not reported.
const unsetMetric = -1

// serviceMetrics returns a copy of the WithServerMetricsProvider metrics
// (the provider's value is read-only), or an empty set.
func (s *Server) serviceMetrics() *orca.ServerMetrics {
	out := &orca.ServerMetrics{
		CPUUtilization: unsetMetric, MemUtilization: unsetMetric, AppUtilization: unsetMetric,
		QPS: unsetMetric, EPS: unsetMetric,
		Utilization: map[string]float64{}, RequestCost: map[string]float64{}, NamedMetrics: map[string]float64{},
	}
	var sm *orca.ServerMetrics
	if s.opts.smp != nil {
		sm = s.opts.smp.ServerMetrics()
	}
	if sm == nil {
		return out
	}
	out.CPUUtilization, out.MemUtilization, out.AppUtilization = sm.CPUUtilization, sm.MemUtilization, sm.AppUtilization
	out.QPS, out.EPS = sm.QPS, sm.EPS
	maps.Copy(out.Utilization, sm.Utilization)
	maps.Copy(out.RequestCost, sm.RequestCost)
	maps.Copy(out.NamedMetrics, sm.NamedMetrics)
	return out
}

// RegisterPressureServices registers on gs the out-of-band services of s:
// ORCA's OpenRcaService (grpc-go's orca.Register; it reports no more often
// than every 30 s unless a client asks for longer) and
// memcontract.v1.MemoryPressureService.
func RegisterPressureServices(gs grpc.ServiceRegistrar, s *Server) error {
	if err := orca.Register(gs, orca.ServiceOptions{ServerMetricsProvider: s}); err != nil {
		return err
	}
	memcontractv1.RegisterMemoryPressureServiceServer(gs, &pressureService{server: s})
	return nil
}

type pressureService struct {
	memcontractv1.UnimplementedMemoryPressureServiceServer
	server *Server
}

func (ps *pressureService) GetPressure(context.Context, *memcontractv1.GetPressureRequest) (*memcontractv1.GetPressureResponse, error) {
	return &memcontractv1.GetPressureResponse{Pressure: ps.server.source.Pressure().Proto()}, nil
}

// WatchPressure sends the pressure at once, then on every new sample or
// level change, at most once per requested interval (0: the module's
// sample interval; never below MinWatchInterval).
func (ps *pressureService) WatchPressure(req *memcontractv1.WatchPressureRequest, stream memcontractv1.MemoryPressureService_WatchPressureServer) error {
	interval := time.Duration(req.GetIntervalMs()) * time.Millisecond
	if interval == 0 {
		interval = time.Duration(ps.server.module.GetSampleIntervalMs()) * time.Millisecond
	}
	interval = max(interval, MinWatchInterval)
	t := time.NewTicker(interval)
	defer t.Stop()
	var last Pressure
	for first := true; ; first = false {
		p := ps.server.source.Pressure()
		if first || !p.SampledAt.Equal(last.SampledAt) || p.Level != last.Level {
			if err := stream.Send(&memcontractv1.WatchPressureResponse{Pressure: p.Proto()}); err != nil {
				return err
			}
			last = p
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-t.C:
		}
	}
}

// GetAllocationReport returns an empty response: the Go package keeps no
// allocation report (Python's guard does).
func (ps *pressureService) GetAllocationReport(context.Context, *memcontractv1.GetAllocationReportRequest) (*memcontractv1.GetAllocationReportResponse, error) {
	return &memcontractv1.GetAllocationReportResponse{}, nil
}

// countCall is called once per call, countError once per failed call.
func (s *Server) countCall()  { s.calls.Add(1) }
func (s *Server) countError() { s.errors.Add(1) }

// atomicRates holds the current window of the call counters.
type atomicRates = atomic.Pointer[callRates]
