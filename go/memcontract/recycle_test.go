package memcontract_test

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/memcontract/memcontract/go/memcontract"
)

// TestRecycleHookMayGracefullyStopTheServer: the recycle hook drains a real
// grpc server (GracefulStop, which waits for a call in flight whose end
// reads the sampler's pressure) and stops the sampler, as WithRecycle's doc
// suggests; nothing deadlocks, and the sampler keeps sampling meanwhile.
func TestRecycleHookMayGracefullyStopTheServer(t *testing.T) {
	var used atomic.Uint64
	used.Store(500 * memcontract.MiB)
	probe := memcontract.ProbeFunc(func(uint64) (memcontract.Reading, error) {
		return memcontract.Reading{UsedBytes: used.Load(), CapacityBytes: 1000 * memcontract.MiB}, nil
	})
	m := memcontract.DefaultModule("api")
	m.SampleIntervalMs = 10
	m.OnStuck = memcontract.OnStuckRecycle
	var gs *grpc.Server
	var sampler *memcontract.Sampler
	hookStarted, hookDone := make(chan struct{}), make(chan struct{})
	sampler = memcontract.NewSampler("v1", m, memcontract.WithProbe(probe),
		memcontract.WithoutActions(memcontract.ActionCollectGarbage, memcontract.ActionTightenGC, memcontract.ActionSoftMemoryLimit),
		memcontract.WithRecycle(func(memcontract.Pressure) {
			close(hookStarted)
			gs.GracefulStop() // blocks until the Watch stream below ends
			sampler.Stop()
			close(hookDone)
		}))
	srv := memcontract.NewServer(sampler, m)
	gs = grpc.NewServer(srv.ServerOptions()...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	watchCtx, cancelWatch := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelWatch()
	stream, err := healthpb.NewHealthClient(conn).Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the call is in flight
		t.Fatal(err)
	}
	used.Store(990 * memcontract.MiB) // level 3, stuck: recycle
	sampler.Start()
	select {
	case <-hookStarted:
	case <-time.After(10 * time.Second):
		t.Fatalf("no recycle within 10 s (level %v)", sampler.Pressure().Level)
	}
	before := sampler.Pressure().SampledAt
	deadline := time.Now().Add(10 * time.Second)
	for !sampler.Pressure().SampledAt.After(before) && time.Now().Before(deadline) {
		runtime.Gosched() // polling with a deadline
	}
	if !sampler.Pressure().SampledAt.After(before) {
		t.Error("the sampler stopped sampling while the recycle hook blocked")
	}
	cancelWatch() // the call in flight ends (its interceptor reads the pressure)
	select {
	case <-hookDone:
	case <-time.After(10 * time.Second):
		t.Fatal("GracefulStop or Stop in the recycle hook deadlocked")
	}
}
