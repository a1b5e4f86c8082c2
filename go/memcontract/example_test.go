package memcontract_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/orca"

	"github.com/memcontract/memcontract/go/memcontract"
)

// A service wires memcontract into its server and its clients. This example
// is the README's Go section (TestReadmeIsTheExample keeps them equal); the
// health service stands in for the service's own.
func Example() {
	// The contract and the sampler: one per process (its actions set the
	// runtime's process-wide GC settings).
	c, err := memcontract.LoadContract("testdata/memory_contract.yaml", memcontract.WithModule("inventory"))
	if err != nil {
		log.Fatal(err) // a *memcontract.ContractError: FILE:LINE: FIELD: message
	}
	sampler := memcontract.NewSampler(c.Version, c.Module)
	sampler.Start()
	defer sampler.Stop()

	// Server: the interceptors first, services registered through Registrar
	// (so calls whose request does not decode carry the trailers too).
	metrics := orca.NewServerMetricsRecorder() // the service's own ORCA metrics: one report carries both
	mc := memcontract.NewServer(sampler, c.Module, memcontract.WithServerMetricsProvider(metrics))
	s := grpc.NewServer(mc.ServerOptions()...)
	healthpb.RegisterHealthServer(mc.Registrar(s), health.NewServer())
	if err := memcontract.RegisterPressureServices(s, mc); err != nil { // ORCA out of band, MemoryPressureService
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go s.Serve(lis)
	defer s.Stop()

	// Client: sends this process's pressure on every call, reads the
	// callee's from its trailers and fails fast while it sheds.
	client := memcontract.NewClient(sampler, memcontract.WithContractFastFail(c.Module))
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, client.DialOptions()...)
	conn, err := grpc.NewClient(lis.Addr().String(), dial...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		log.Fatal(err)
	}
	callee, ok := client.PeerPressure(conn.Target())
	fmt.Println(ok, callee.Module, callee.Level)
	// Output: true inventory NORMAL
}
