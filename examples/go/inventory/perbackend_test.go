package inventory_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // registers weighted_round_robin
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	inventoryv1 "github.com/memcontract/memcontract/examples/go/gen/inventory/v1"
	"github.com/memcontract/memcontract/examples/go/inventory"
	"github.com/memcontract/memcontract/go/memcontract"
)

// pushbackMs is the backends' retry_pushback_ms, the client's window.
const pushbackMs = 300

// backend is one inventory server whose pressure the test sets, counting the
// GetItem calls that reach it.
type backend struct {
	src     *memcontract.StaticSource
	addr    string
	arrived atomic.Int64
}

func (b *backend) set(level memcontract.Level) {
	usage := map[memcontract.Level]float64{memcontract.LevelNormal: 0.3, memcontract.LevelCritical: 0.97}[level]
	b.src.Set(memcontract.Pressure{UsageRatio: usage, CapacityBytes: 1 << 30, Level: level, Module: "inventory"})
}

func startBackends(t *testing.T, levels ...memcontract.Level) []*backend {
	t.Helper()
	m := memcontract.DefaultModule("inventory")
	m.CoreMethods = []string{pingMethod}
	m.RetryPushbackMs = pushbackMs
	var out []*backend
	for _, level := range levels {
		b := &backend{src: memcontract.NewStaticSource(memcontract.Pressure{})}
		b.set(level)
		srv := memcontract.NewServer(b.src, m)
		count := grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if info.FullMethod == getItemMethod {
				b.arrived.Add(1)
			}
			return h(ctx, req)
		})
		// Arrivals are counted before memcontract's interceptor sheds.
		s := grpc.NewServer(append([]grpc.ServerOption{count}, srv.ServerOptions()...)...)
		inventoryv1.RegisterInventoryServiceServer(srv.Registrar(s), &inventory.Service{})
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(lis)
		t.Cleanup(s.Stop)
		b.addr = lis.Addr().String()
		out = append(out, b)
	}
	return out
}

// channel is one ClientConn over the backends with policy (a service-config
// loadBalancingConfig entry) and memcontract's client interceptors.
func channel(t *testing.T, backends []*backend, policy string) (*memcontract.Client, inventoryv1.InventoryServiceClient) {
	t.Helper()
	r := manual.NewBuilderWithScheme("perbackend")
	var addrs []resolver.Address
	for _, b := range backends {
		addrs = append(addrs, resolver.Address{Addr: b.addr})
	}
	r.InitialState(resolver.State{Addresses: addrs})
	m := memcontract.DefaultModule("order")
	m.CoreMethods = []string{pingMethod}
	m.RetryPushbackMs = pushbackMs
	client := memcontract.NewClient(memcontract.NewStaticSource(memcontract.Pressure{UsageRatio: 0.3}),
		memcontract.WithContractFastFail(m))
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig": [%s]}`, policy)),
	}, client.DialOptions()...)
	conn, err := grpc.NewClient(r.Scheme()+":///backends", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	inv := inventoryv1.NewInventoryServiceClient(conn)
	// Ping (core, never failed fast) until every backend has answered once.
	deadline := time.Now().Add(10 * time.Second)
	for heard := map[string]bool{}; len(heard) < len(backends); {
		var from peer.Peer
		if _, err := inv.Ping(ctx(t), &inventoryv1.PingRequest{}, grpc.Peer(&from)); err != nil {
			t.Fatal(err)
		}
		heard[from.Addr.String()] = true
		if time.Now().After(deadline) {
			t.Fatalf("only %d backends answered", len(heard))
		}
	}
	return client, inv
}

// outcomes makes n GetItem calls; the number OK and failed fast.
func outcomes(t *testing.T, inv inventoryv1.InventoryServiceClient, n int) (ok, fastFailed, shed int) {
	for range n {
		_, err := inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: "a"})
		switch {
		case err == nil:
			ok++
		case strings.Contains(err.Error(), "failed fast"):
			fastFailed++
		case status.Code(err) == codes.ResourceExhausted:
			shed++
		default:
			t.Fatalf("GetItem() = %v", err)
		}
	}
	return ok, fastFailed, shed
}

func TestRoundRobinOneHotBackendCostsOnlyItsOwnCalls(t *testing.T) {
	backends := startBackends(t, memcontract.LevelCritical, memcontract.LevelNormal, memcontract.LevelNormal)
	client, inv := channel(t, backends, `{"round_robin": {}}`)
	ok, fastFailed, shed := outcomes(t, inv, 300)
	t.Logf("round_robin, one backend of three at level 3: %d OK, %d shed, %d failed fast", ok, shed, fastFailed)
	if fastFailed != 0 || client.FastFailCount() != 0 || ok < 180 {
		t.Errorf("%d OK, %d failed fast of 300: want >= 60%% OK and no fast fail", ok, fastFailed)
	}
}

func TestWeightedRoundRobinOneHotBackendHardlyCostsAnything(t *testing.T) {
	backends := startBackends(t, memcontract.LevelCritical, memcontract.LevelNormal, memcontract.LevelNormal)
	client, inv := channel(t, backends,
		`{"weighted_round_robin": {"blackoutPeriod": "0s", "weightUpdatePeriod": "0.1s"}}`)
	for warm := time.Now().Add(time.Second); time.Now().Before(warm); { // weights from the first reports
		if _, err := inv.Ping(ctx(t), &inventoryv1.PingRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	ok, fastFailed, shed := outcomes(t, inv, 300)
	t.Logf("weighted_round_robin, one backend of three at level 3: %d OK, %d shed, %d failed fast", ok, shed, fastFailed)
	if ok < 285 || client.FastFailCount() != 0 {
		t.Errorf("%d OK, %d failed fast of 300: want >= 95%% OK and no fast fail", ok, fastFailed)
	}
}

func TestAllBackendsHotOneProbePerWindowThenRecovery(t *testing.T) {
	backends := startBackends(t, memcontract.LevelCritical, memcontract.LevelCritical, memcontract.LevelCritical)
	_, inv := channel(t, backends, `{"round_robin": {}}`)
	for _, b := range backends {
		b.arrived.Store(0)
	}
	start := time.Now()
	calls := 0
	for time.Since(start) < 2*time.Second {
		if _, err := inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: "a"}); err == nil {
			t.Fatal("a call succeeded while every backend sheds")
		}
		calls++
		time.Sleep(2 * time.Millisecond) // pacing: a few hundred calls, not a busy loop
	}
	elapsed := time.Since(start)
	most := int(elapsed/(pushbackMs*time.Millisecond)) + 1 // one probe per window for the channel
	total := int64(0)
	var counts []int64
	for _, b := range backends {
		counts = append(counts, b.arrived.Load())
		total += b.arrived.Load()
	}
	t.Logf("all at level 3, %d calls in %v: arrivals %v", calls, elapsed, counts)
	if total < 1 || total > int64(most) {
		t.Errorf("arrivals %v over %v: want 1 to %d (one probe per %d ms window)", counts, elapsed, most, pushbackMs)
	}
	backends[1].set(memcontract.LevelNormal)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{Sku: "a"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never noticed the recovered backend")
		}
		time.Sleep(10 * time.Millisecond) // pacing between probes
	}
}
