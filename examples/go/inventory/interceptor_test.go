package inventory_test

import (
	"context"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/memcontract/memcontract/examples/go/gen/inventory/v1"
	"github.com/memcontract/memcontract/examples/go/inventory"
	"github.com/memcontract/memcontract/go/memcontract"
)

const (
	pingMethod    = "/inventory.v1.InventoryService/Ping"
	getItemMethod = "/inventory.v1.InventoryService/GetItem"
)

type env struct {
	serverSrc, clientSrc *memcontract.StaticSource
	server               *memcontract.Server
	client               *memcontract.Client
	conn                 *grpc.ClientConn
	inv                  inventoryv1.InventoryServiceClient
	calls                chan memcontract.CallInfo
}

func newEnv(t *testing.T, clientOpts ...memcontract.ClientOption) *env {
	t.Helper()
	return newEnvWith(t, nil, nil, clientOpts...)
}

// newEnvWith starts the inventory service on loopback with the server
// options (and extra grpc.ServerOptions after ours) and a client.
func newEnvWith(t *testing.T, serverOpts []memcontract.ServerOption, extra []grpc.ServerOption, clientOpts ...memcontract.ClientOption) *env {
	t.Helper()
	m := memcontract.DefaultModule("inventory")
	m.CoreMethods = []string{pingMethod}
	m.RetryPushbackMs = 1500
	e := &env{
		serverSrc: memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.5, CapacityBytes: 1 << 30, Module: "inventory", ContractVersion: "v1.2"}),
		clientSrc: memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.7, CapacityBytes: 2 << 30, Level: memcontract.LevelAlert, Module: "order"}),
		calls:     make(chan memcontract.CallInfo, 100),
	}
	e.server = memcontract.NewServer(e.serverSrc, m, serverOpts...)
	e.server.OnCall = func(ci memcontract.CallInfo) { e.calls <- ci }
	s := grpc.NewServer(append(e.server.ServerOptions(), extra...)...)
	inventoryv1.RegisterInventoryServiceServer(e.server.Registrar(s), &inventory.Service{})
	healthpb.RegisterHealthServer(s, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(s.Stop)

	e.client = memcontract.NewClient(e.clientSrc, clientOpts...)
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, e.client.DialOptions()...)
	e.conn, err = grpc.NewClient(lis.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close() })
	e.inv = inventoryv1.NewInventoryServiceClient(e.conn)
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// checkTrailer verifies the server's keys and ORCA report in a trailer.
func checkTrailer(t *testing.T, tr metadata.MD, want memcontract.Pressure) {
	t.Helper()
	p, ok, invalid := memcontract.Decode(tr)
	if !ok || invalid != 0 || p.UsageRatio != want.UsageRatio || p.Level != want.Level || p.Module != want.Module {
		t.Errorf("Decode(trailer) = %+v, %v, %d; want %+v", p, ok, invalid, want)
	}
	for _, k := range []string{memcontract.UsageKey, memcontract.CapacityKey, memcontract.LevelKey, memcontract.PressureBinKey} {
		if len(tr.Get(k)) != 1 {
			t.Errorf("trailer %s = %q, want one value", k, tr.Get(k))
		}
	}
	orca := tr.Get(memcontract.LoadReportKey)
	if len(orca) != 1 {
		t.Fatalf("trailer %s has %d values, want 1", memcontract.LoadReportKey, len(orca))
	}
	var r v3orcapb.OrcaLoadReport
	if err := proto.Unmarshal([]byte(orca[0]), &r); err != nil {
		t.Fatalf("ORCA report does not parse: %v", err)
	}
	// Under the default orca rates, headroom, rps_fractional is the memory
	// headroom (these calls come before the first rates window: no errors).
	wantReport := memcontract.LoadReport(want)
	wantReport.RpsFractional = math.Max(1-want.UsageRatio, memcontract.MinHeadroom)
	if !proto.Equal(&r, wantReport) {
		t.Errorf("ORCA report = %v, want %v", &r, wantReport)
	}
}

func TestUnaryOK(t *testing.T) {
	e := newEnv(t)
	var tr metadata.MD
	resp, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: "abc"}, grpc.Trailer(&tr))
	if err != nil {
		t.Fatalf("GetItem() failed: %v", err)
	}
	if c := resp.GetCaller(); !c.GetPresent() || c.GetUsageRatio() != 0.7 || c.GetLevel() != 1 || c.GetModule() != "order" {
		t.Errorf("handler saw caller %v, want usage 0.7 level 1 module order", c)
	}
	checkTrailer(t, tr, e.serverSrc.Pressure())
	if p, ok := e.client.PeerPressure(e.conn.Target()); !ok || p.UsageRatio != 0.5 {
		t.Errorf("PeerPressure() = %+v, %v; want usage 0.5", p, ok)
	}
	ci := <-e.calls
	if ci.Method != getItemMethod || ci.Code != codes.OK || ci.Shed || !ci.PeerOK {
		t.Errorf("OnCall got %+v", ci)
	}
}

func TestHandlerErrorKeepsTrailers(t *testing.T) {
	e := newEnv(t)
	var tr metadata.MD
	_, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: inventory.FailSKU}, grpc.Trailer(&tr))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetItem() = %v, want NotFound", err)
	}
	checkTrailer(t, tr, e.serverSrc.Pressure())
}

func TestShedding(t *testing.T) {
	e := newEnv(t)
	crit := memcontract.Pressure{UsageRatio: 0.97, CapacityBytes: 1 << 30, Level: memcontract.LevelCritical, Module: "inventory", AllocRateRatio: 2.5}
	e.serverSrc.Set(crit)

	var tr metadata.MD
	_, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: "abc"}, grpc.Trailer(&tr))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), `"inventory"`) || !strings.Contains(st.Message(), "level 3") {
		t.Fatalf("GetItem() at level 3 = %v, want ResourceExhausted naming module and level", err)
	}
	checkTrailer(t, tr, crit)
	if got := tr.Get(memcontract.RetryPushbackKey); len(got) != 1 || got[0] != "1500" {
		t.Errorf("trailer %s = %q, want [1500]", memcontract.RetryPushbackKey, got)
	}

	tests := []struct {
		name string
		call func(context.Context, *metadata.MD) error
		want codes.Code
	}{
		{"core Ping", func(c context.Context, tr *metadata.MD) error {
			_, err := e.inv.Ping(c, &inventoryv1.PingRequest{}, grpc.Trailer(tr))
			return err
		}, codes.OK},
		{"health", func(c context.Context, tr *metadata.MD) error {
			_, err := healthpb.NewHealthClient(e.conn).Check(c, &healthpb.HealthCheckRequest{}, grpc.Trailer(tr))
			return err
		}, codes.OK},
		{"server stream", func(c context.Context, tr *metadata.MD) error {
			s, err := e.inv.ListItems(c, &inventoryv1.ListItemsRequest{Count: 3}, grpc.Trailer(tr))
			if err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		}, codes.ResourceExhausted},
		{"client stream", func(c context.Context, tr *metadata.MD) error {
			s, err := e.inv.Reserve(c, grpc.Trailer(tr))
			if err != nil {
				return err
			}
			_ = s.Send(&inventoryv1.ReserveRequest{Sku: "a", Quantity: 1})
			_, err = s.CloseAndRecv()
			return err
		}, codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr metadata.MD
			if err := tt.call(ctx(t), &tr); status.Code(err) != tt.want {
				t.Fatalf("call = %v, want %v", err, tt.want)
			}
			checkTrailer(t, tr, crit)
		})
	}
	if got := e.server.ShedCount(); got != 3 {
		t.Errorf("ShedCount() = %d, want 3", got)
	}
}

func TestStreamsRecordPeer(t *testing.T) {
	e := newEnv(t)
	s, err := e.inv.ListItems(ctx(t), &inventoryv1.ListItemsRequest{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		resp, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !resp.GetCaller().GetPresent() {
			t.Errorf("stream handler saw no caller pressure")
		}
		n++
	}
	if n != 2 {
		t.Errorf("ListItems sent %d items, want 2", n)
	}
	if _, ok := e.client.PeerPressure(e.conn.Target()); !ok {
		t.Error("no peer pressure recorded after a server stream")
	}

	e2 := newEnv(t)
	r, err := e2.inv.Reserve(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = r.Send(&inventoryv1.ReserveRequest{Sku: "a", Quantity: 2})
	}
	resp, err := r.CloseAndRecv()
	if err != nil || resp.GetReserved() != 6 || !resp.GetCaller().GetPresent() {
		t.Fatalf("Reserve() = %v, %v; want 6 reserved and caller pressure", resp, err)
	}
	if _, ok := e2.client.PeerPressure(e2.conn.Target()); !ok {
		t.Error("no peer pressure recorded after a client stream")
	}
}

func TestFastFail(t *testing.T) {
	e := newEnv(t, memcontract.WithFastFail([]string{pingMethod}, time.Second))
	e.serverSrc.Set(memcontract.Pressure{UsageRatio: 0.99, Level: memcontract.LevelCritical, Module: "inventory"})
	if _, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("GetItem() = %v, want ResourceExhausted", err)
	}
	if _, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{}); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "failed fast") {
		t.Fatalf("second GetItem() = %v, want a local fast fail", err)
	}
	if got := e.server.ShedCount(); got != 1 {
		t.Errorf("server ShedCount() = %d, want 1 (second call must not leave the process)", got)
	}
	if _, err := e.inv.Ping(ctx(t), &inventoryv1.PingRequest{}); err != nil {
		t.Errorf("core Ping() = %v, want OK", err)
	}
}

func TestInvalidPeerHeadersNeverFail(t *testing.T) {
	e := newEnv(t)
	e.serverSrc.Set(memcontract.Pressure{UsageRatio: 0.1})
	c := metadata.AppendToOutgoingContext(ctx(t), "x-memory-usage", "lots")
	// The client interceptor replaces our own keys, so call without it.
	conn, err := grpc.NewClient(e.conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c = metadata.AppendToOutgoingContext(c, "x-memory-level", "9", "x-memory-pressure-bin", "\xff\xff")
	resp, err := inventoryv1.NewInventoryServiceClient(conn).GetItem(c, &inventoryv1.GetItemRequest{Sku: "a"})
	if err != nil {
		t.Fatalf("GetItem() with invalid headers failed: %v", err)
	}
	if got := resp.GetCaller(); got.GetPresent() || got.GetInvalid() != 3 {
		t.Errorf("handler saw %v, want no pressure and 3 invalid values", got)
	}
	if got := e.server.InvalidCount(); got != 3 {
		t.Errorf("InvalidCount() = %d, want 3", got)
	}
}
