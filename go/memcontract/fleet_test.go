package memcontract_test

import (
	"context"
	"math"
	"net"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	v3orcaservicegrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	v3orcaservicepb "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/orca"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
	"github.com/memcontract/memcontract/go/memcontract"
	"google.golang.org/grpc/health"
)

// ctx is a context for one test's calls, bounded so a hang fails the test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// fleetServer serves health and the pressure services of a Server for
// module m reporting src; it returns a connection to it.
func fleetServer(t *testing.T, src memcontract.Source, edit func(m *memcontractv1.ModuleContract)) (*grpc.ClientConn, *memcontract.Server) {
	t.Helper()
	m := memcontract.DefaultModule("api")
	m.SampleIntervalMs = 100
	edit(m)
	srv := memcontract.NewServer(src, m)
	s := grpc.NewServer(srv.ServerOptions()...)
	healthpb.RegisterHealthServer(s, health.NewServer())
	if err := memcontract.RegisterPressureServices(s, srv); err != nil {
		t.Fatal(err)
	}
	return dial(t, serve(t, s)), srv
}

// serve serves s on a loopback port until the test ends; its address.
func serve(t *testing.T, s *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// dial opens a new connection to target (a quiet server tells each
// connection its keys on its first call).
func dial(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// healthTrailer makes one health Check on conn and returns its trailer.
func healthTrailer(t *testing.T, conn *grpc.ClientConn) metadata.MD {
	t.Helper()
	var tr metadata.MD
	if _, err := healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{}, grpc.Trailer(&tr)); err != nil {
		t.Fatal(err)
	}
	return tr
}

func healthReport(t *testing.T, conn *grpc.ClientConn) *v3orcapb.OrcaLoadReport {
	t.Helper()
	reports := healthTrailer(t, conn).Get(memcontract.LoadReportKey)
	if len(reports) != 1 {
		t.Fatalf("%s: %d values, want one", memcontract.LoadReportKey, len(reports))
	}
	var r v3orcapb.OrcaLoadReport
	if err := proto.Unmarshal([]byte(reports[0]), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestORCAReportCarriesUtilizationAndRates(t *testing.T) {
	src := memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.9, CapacityBytes: 1 << 30})
	conn, _ := fleetServer(t, src, func(m *memcontractv1.ModuleContract) {
		m.Orca.Rates = memcontract.RatesCalls
	})
	healthReport(t, conn) // opens the first window
	for range 30 {
		healthReport(t, conn)
	}
	time.Sleep(150 * time.Millisecond)
	r := healthReport(t, conn)
	if r.GetApplicationUtilization() != 0.9 || r.GetMemUtilization() != 0.9 {
		t.Errorf("utilizations = %v, %v; want 0.9, 0.9", r.GetApplicationUtilization(), r.GetMemUtilization())
	}
	// 31 calls in a window of at least 150 ms, and the whole test well under 10 s.
	if r.GetRpsFractional() < 3 || r.GetRpsFractional() > 31/0.15 {
		t.Errorf("rps_fractional = %v, want 31 calls over the window", r.GetRpsFractional())
	}
	if r.GetEps() != 0 {
		t.Errorf("eps = %v, want 0", r.GetEps())
	}
}

// TestQuietServerSendsTheReportOnChange: calm is free for the ORCA report
// too: a quiet server's report goes with a connection's first call and with
// a change, not with every call (grpc-go's WRR keeps a weight for 3 minutes).
func TestQuietServerSendsTheReportOnChange(t *testing.T) {
	src := memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.3, CapacityBytes: 1 << 30})
	conn, _ := fleetServer(t, src, func(*memcontractv1.ModuleContract) {})
	healthReport(t, conn) // the connection's first call
	if tr := healthTrailer(t, conn); len(tr.Get(memcontract.LoadReportKey)) != 0 || len(tr.Get("x-memory-level")) != 0 {
		t.Fatalf("a quiet server's second call carries %v, want no keys and no report", tr)
	}
	src.Set(memcontract.Pressure{UsageRatio: 0.97, Level: memcontract.LevelCritical, CapacityBytes: 1 << 30})
	if r := healthReport(t, conn); r.GetNamedMetrics()[memcontract.LevelMetricName] != 3 {
		t.Errorf("report after the change = %v, want level 3", r)
	}
	if r := healthReport(t, conn); r.GetMemUtilization() != 0.97 {
		t.Errorf("report at level 3 = %v, want one on every call", r)
	}
}

// TestQuietServerStreamsFollowTheCalmRule: a stream carries a quiet server's
// keys as a unary call does, once per connection (a proxy's every call is a
// stream), and a reflection call tells no connection, so the call grpcurl
// makes after its reflection stream still shows them.
func TestQuietServerStreamsFollowTheCalmRule(t *testing.T) {
	src := memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.3, CapacityBytes: 1 << 30})
	srv := memcontract.NewServer(src, memcontract.DefaultModule("api"))
	s := grpc.NewServer(srv.ServerOptions()...)
	reflection.Register(s)
	conn := dial(t, serve(t, s))

	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Recv(); err != nil {
		t.Fatal(err)
	}
	_ = rs.CloseSend()
	for err == nil {
		_, err = rs.Recv()
	}
	// Two calls the unknown-service handler answers: streams to grpc-go.
	var levels []int
	for range 2 {
		var tr metadata.MD
		err := conn.Invoke(ctx(t), "/no.Such/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}, grpc.Trailer(&tr))
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("unknown method: %v, want Unimplemented", err)
		}
		levels = append(levels, len(tr.Get(memcontract.LevelKey)))
	}
	if levels[0] != 1 || levels[1] != 0 {
		t.Errorf("x-memory-level values on the two streams after reflection: %v, want [1 0]", levels)
	}
}

// TestAnOpenStreamTellsNoConnection: a stream tells its connection when it
// ends (its trailers go out then); a health Watch that stays open (a
// balancer's health check) leaves the connection's next call to carry them.
func TestAnOpenStreamTellsNoConnection(t *testing.T) {
	src := memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.3, CapacityBytes: 1 << 30})
	conn, _ := fleetServer(t, src, func(*memcontractv1.ModuleContract) {})
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}
	healthReport(t, conn) // the Watch is still open: this call carries them
	if tr := healthTrailer(t, conn); len(tr.Get(memcontract.LevelKey)) != 0 {
		t.Errorf("the call after it carries %v, want nothing (the connection was told)", tr)
	}
}

func TestORCAUtilizationNone(t *testing.T) {
	src := memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.9, CapacityBytes: 1 << 30})
	conn, _ := fleetServer(t, src, func(m *memcontractv1.ModuleContract) {
		m.Orca.ApplicationUtilization = memcontract.UtilizationNone
	})
	if r := healthReport(t, conn); r.GetApplicationUtilization() != 0 || r.GetMemUtilization() != 0.9 {
		t.Errorf("report = %v, want no application_utilization", r)
	}
}

func TestPressureServices(t *testing.T) {
	src := memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.5, CapacityBytes: 1 << 30, Module: "api", SampledAt: time.UnixMilli(1000)})
	conn, _ := fleetServer(t, src, func(*memcontractv1.ModuleContract) {})
	ps := memcontractv1.NewMemoryPressureServiceClient(conn)
	got, err := ps.GetPressure(ctx(t), &memcontractv1.GetPressureRequest{})
	if err != nil || got.GetPressure().GetUsageRatio() != 0.5 || got.GetPressure().GetModule() != "api" {
		t.Fatalf("GetPressure() = %v, %v", got, err)
	}
	rep, err := ps.GetAllocationReport(ctx(t), &memcontractv1.GetAllocationReportRequest{})
	if err != nil || rep.GetReport() != nil {
		t.Fatalf("GetAllocationReport() = %v, %v; want an empty response", rep, err)
	}
	stream, err := ps.WatchPressure(ctx(t), &memcontractv1.WatchPressureRequest{IntervalMs: 100})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetPressure().GetUsageRatio() != 0.5 {
		t.Fatalf("first WatchPressure message = %v, %v", first, err)
	}
	src.Set(memcontract.Pressure{UsageRatio: 0.97, Level: memcontract.LevelCritical, SampledAt: time.UnixMilli(2000)})
	second, err := stream.Recv()
	if err != nil || second.GetPressure().GetLevel() != memcontractv1.BreachLevel_BREACH_LEVEL_CRITICAL {
		t.Fatalf("second WatchPressure message = %v, %v; want level 3", second, err)
	}

	// OpenRcaService: grpc-go's service floors the interval at 30 s, so one
	// message (sent at once) is all a test can wait for.
	orca, err := v3orcaservicegrpc.NewOpenRcaServiceClient(conn).StreamCoreMetrics(ctx(t),
		&v3orcaservicepb.OrcaLoadReportRequest{ReportInterval: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := orca.Recv()
	if err != nil || r.GetApplicationUtilization() != 0.97 || r.GetMemUtilization() != 0.97 {
		t.Fatalf("StreamCoreMetrics() first report = %v, %v", r, err)
	}
}

func TestORCAHeadroomRates(t *testing.T) {
	src := memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.6, CapacityBytes: 1 << 30})
	conn, _ := fleetServer(t, src, func(m *memcontractv1.ModuleContract) {
		m.Orca.Rates = memcontract.RatesHeadroom
	})
	for range 10 {
		healthTrailer(t, conn) // quiet at 60 %: only the first carries a report
	}
	time.Sleep(150 * time.Millisecond)
	if r := healthReport(t, dial(t, conn.Target())); math.Abs(r.GetRpsFractional()-0.4) > 1e-9 || r.GetEps() != 0 || r.GetApplicationUtilization() != 0.6 {
		t.Errorf("report = %v, want rps_fractional 0.4 (the headroom), eps 0, application_utilization 0.6", r)
	}
}

// TestServerMetricsComposeWithTheService: the provider of the per-call and
// out-of-band reports keeps the service's metrics, sets the contract's
// fields over them, and leaves the service's provider untouched.
func TestServerMetricsComposeWithTheService(t *testing.T) {
	smp := serviceMetrics{
		CPUUtilization: 0.42, MemUtilization: -1, AppUtilization: 0.1, QPS: 120, EPS: -1,
		NamedMetrics: map[string]float64{"svc.queue": 3},
	}
	src := memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.6, CapacityBytes: 1 << 30})
	m := memcontract.DefaultModule("api")
	if m.Orca.Rates != memcontract.RatesHeadroom {
		t.Errorf("default orca rates %q, want %q", m.Orca.Rates, memcontract.RatesHeadroom)
	}
	m.Orca.Rates = memcontract.RatesCalls
	srv := memcontract.NewServer(src, m, memcontract.WithServerMetricsProvider(smp))
	sm := srv.ServerMetrics()
	if sm.CPUUtilization != 0.42 || sm.QPS != 120 || sm.EPS != 0 || sm.MemUtilization != 0.6 ||
		sm.AppUtilization != 0.6 || sm.NamedMetrics["svc.queue"] != 3 {
		t.Errorf("ServerMetrics() = %+v; want the service's cpu, qps and named metric, eps 0, memory 0.6 in both utilizations", sm)
	}
	if smp.MemUtilization != -1 || smp.AppUtilization != 0.1 || len(smp.NamedMetrics) != 1 {
		t.Errorf("the service's metrics changed: %+v", smp)
	}

	m.Orca.ApplicationUtilization = memcontract.UtilizationNone
	m.Orca.Rates = memcontract.RatesHeadroom
	sm = memcontract.NewServer(src, m, memcontract.WithServerMetricsProvider(smp)).ServerMetrics()
	if math.Abs(sm.QPS-0.4) > 1e-9 || sm.EPS != 0 || sm.AppUtilization != 0.1 {
		t.Errorf("ServerMetrics() under rates: headroom, application_utilization: none = %+v; want qps 0.4 (the headroom), the service's application_utilization 0.1", sm)
	}
}

// serviceMetrics is a service's own orca.ServerMetricsProvider that returns
// its metrics as they are (grpc-go's recorder returns copies).
type serviceMetrics orca.ServerMetrics

func (sm serviceMetrics) ServerMetrics() *orca.ServerMetrics {
	m := orca.ServerMetrics(sm)
	return &m
}

func TestMinReportingIntervalServesOpenRcaServiceBelowGrpcGosFloor(t *testing.T) {
	src := memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.5, CapacityBytes: 1 << 30, Module: "api"})
	m := memcontract.DefaultModule("api")
	srv := memcontract.NewServer(src, m)
	s := grpc.NewServer(srv.ServerOptions()...)
	if err := memcontract.RegisterPressureServices(s, srv, memcontract.WithMinReportingInterval(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A client asking for 20 ms gets the 100 ms floor; three reports, the
	// pressure changed between them, arrive within a second (not 30 s).
	stream, err := v3orcaservicegrpc.NewOpenRcaServiceClient(conn).StreamCoreMetrics(ctx(t),
		&v3orcaservicepb.OrcaLoadReportRequest{ReportInterval: durationpb.New(20 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var usages []float64
	for range 3 {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		usages = append(usages, r.GetMemUtilization())
		src.Set(memcontract.Pressure{UsageRatio: 0.9, CapacityBytes: 1 << 30, Level: memcontract.LevelDegraded, Module: "api"})
	}
	elapsed := time.Since(start)
	if elapsed < 200*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("three reports took %v: want two 100 ms intervals (the floor), far below 30 s", elapsed)
	}
	if usages[0] != 0.5 || usages[2] != 0.9 {
		t.Errorf("reported mem_utilization %v: want 0.5 then the new 0.9", usages)
	}
}
