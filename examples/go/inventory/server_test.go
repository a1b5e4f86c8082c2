package inventory_test

import (
	"context"
	"sync"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/orca"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/memcontract/memcontract/examples/go/gen/inventory/v1"
	"github.com/memcontract/memcontract/go/memcontract"
)

var crit = memcontract.Pressure{UsageRatio: 0.97, CapacityBytes: 1 << 30, Level: memcontract.LevelCritical, Module: "inventory"}

// TestORCAComposesWithTheServiceMetrics: the service's own ORCA server
// metrics and a handler's per-call metric travel in the one report that
// carries memory and application_utilization. Under the default rates,
// headroom, rps_fractional is the memory headroom (1 - 0.5), not the
// service's qps.
func TestORCAComposesWithTheServiceMetrics(t *testing.T) {
	smp := orca.NewServerMetricsRecorder()
	smp.SetCPUUtilization(0.42)
	smp.SetQPS(120)
	handlerMetric := grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		orca.CallMetricsRecorderFromContext(ctx).SetNamedMetric("handler.cost", 7)
		return h(ctx, req)
	})
	e := newEnvWith(t, []memcontract.ServerOption{memcontract.WithServerMetricsProvider(smp)}, []grpc.ServerOption{handlerMetric})
	var tr metadata.MD
	if _, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: "a"}, grpc.Trailer(&tr)); err != nil {
		t.Fatal(err)
	}
	reports := tr.Get(memcontract.LoadReportKey)
	if len(reports) != 1 {
		t.Fatalf("%d %s values, want one report", len(reports), memcontract.LoadReportKey)
	}
	var got v3orcapb.OrcaLoadReport
	if err := proto.Unmarshal([]byte(reports[0]), &got); err != nil {
		t.Fatal(err)
	}
	want := &v3orcapb.OrcaLoadReport{
		CpuUtilization: 0.42, RpsFractional: 0.5, MemUtilization: 0.5, ApplicationUtilization: 0.5,
		NamedMetrics: map[string]float64{"handler.cost": 7, memcontract.LevelMetricName: 0, memcontract.AllocRateRatioMetricName: 0},
	}
	if !proto.Equal(&got, want) {
		t.Errorf("ORCA report %v, want %v", &got, want)
	}
}

func TestUntrustedCallerIsIgnoredAndCounted(t *testing.T) {
	elsewhere, err := memcontract.TrustOnly([]string{"10.0.0.0/8"}, []string{"spiffe://example.org/order"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, []memcontract.ServerOption{memcontract.WithTrust(elsewhere)}, nil)
	e.clientSrc.Set(crit) // a caller claiming level 3
	resp, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: "a"})
	if err != nil || resp.GetCaller().GetPresent() {
		t.Fatalf("GetItem() = %v, %v; want OK with the untrusted caller's pressure hidden", resp, err)
	}
	if ci := <-e.calls; !ci.Untrusted || ci.PeerOK || e.server.UntrustedCount() != 1 {
		t.Errorf("call %+v, untrusted count %d; want one untrusted call", ci, e.server.UntrustedCount())
	}

	loopback, _ := memcontract.TrustOnly([]string{"127.0.0.0/8", "::1"}, nil)
	e2 := newEnvWith(t, []memcontract.ServerOption{memcontract.WithTrust(loopback)}, nil)
	if resp, err := e2.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: "a"}); err != nil || !resp.GetCaller().GetPresent() {
		t.Errorf("GetItem() from a trusted network = %v, %v; want the caller's pressure", resp, err)
	}
	if _, err := memcontract.TrustOnly([]string{"not-a-network"}, nil); err == nil {
		t.Error("TrustOnly accepted a bad CIDR")
	}
}

// rawCodec sends bytes as they are, to send a request that does not decode.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)   { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error { *(v.(*[]byte)) = b; return nil }
func (rawCodec) Name() string                    { return "proto" }

func TestEveryOutcomeCarriesTrailers(t *testing.T) {
	e := newEnv(t)
	own := e.serverSrc.Pressure()
	tests := []struct {
		name   string
		method string
		req    []byte
		want   codes.Code
	}{
		{"unknown method", "/inventory.v1.InventoryService/Nope", nil, codes.Unimplemented},
		{"unknown service", "/nope.v1.Nope/Get", nil, codes.Unimplemented},
		{"request that does not decode", getItemMethod, []byte{0xff, 0xff, 0xff}, codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr metadata.MD
			var reply []byte
			err := e.conn.Invoke(ctx(t), tt.method, &tt.req, &reply, grpc.ForceCodec(rawCodec{}), grpc.Trailer(&tr))
			if status.Code(err) != tt.want {
				t.Fatalf("Invoke() = %v, want %v", err, tt.want)
			}
			p, ok, _ := memcontract.Decode(tr)
			if !ok || p.UsageRatio != own.UsageRatio || len(tr.Get(memcontract.LevelKey)) != 1 {
				t.Errorf("trailers %v, want the server's keys once", tr)
			}
		})
	}
}

func TestEarlyShedBeforeDecodingCarriesDetails(t *testing.T) {
	e := newEnvWith(t, []memcontract.ServerOption{memcontract.WithEarlyShed()}, nil,
		memcontract.WithFastFail([]string{pingMethod}, time.Second))
	e.serverSrc.Set(crit)
	_, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: "a"})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("GetItem() = %v, want ResourceExhausted", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry.GetRetryDelay().AsDuration() != 1500*time.Millisecond {
		t.Errorf("details %v, want RetryInfo of 1500 ms", st.Details())
	}
	if p, ok := e.client.PeerPressure(e.conn.Target()); !ok || p.Level != memcontract.LevelCritical {
		t.Errorf("PeerPressure() = %+v, %v; want level 3 read from the details", p, ok)
	}
	select {
	case ci := <-e.calls:
		t.Errorf("a handler-side interceptor saw the shed call: %+v", ci)
	default:
	}
	if _, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{}); status.Code(err) != codes.ResourceExhausted || e.server.ShedCount() != 1 {
		t.Errorf("second GetItem() = %v, shed %d; want a local fast fail", err, e.server.ShedCount())
	}
	if _, err := e.inv.Ping(ctx(t), &inventoryv1.PingRequest{}); err != nil {
		t.Errorf("core Ping() = %v, want OK", err)
	}
}

// TestCallerOptionsAreNotWritten: the interceptor must not append into the
// caller's CallOption slice (its spare capacity is shared by every call
// made with it: a data race under -race).
func TestCallerOptionsAreNotWritten(t *testing.T) {
	e := newEnv(t)
	opts := make([]grpc.CallOption, 0, 4)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Invoke hands opts to the interceptor as they are (the
			// generated client copies them first).
			if err := e.conn.Invoke(ctx(t), getItemMethod, &inventoryv1.GetItemRequest{Sku: "a"}, &inventoryv1.GetItemResponse{}, opts...); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if spare := opts[:cap(opts)]; spare[0] != nil {
		t.Errorf("the interceptor wrote %T into the caller's options", spare[0])
	}
}
