// Command inventory serves inventory.v1.InventoryService with the
// memcontract server interceptors, for the Go interoperability tests and by
// hand.
//
//	inventory -listen 127.0.0.1:0 -contract examples/go/contracts/memory_contract.yaml \
//	    -module inventory -force-usage 0.97 -force-level 3
//
// Output on stdout, one JSON object a line:
//
//	{"event":"listening","address":"127.0.0.1:40123","port":40123}   (always first)
//	{"event":"metrics","address":"127.0.0.1:40124","port":40124}     (with -metrics-listen)
//	{"event":"call","method":...,"code":"OK","shed":false,"peer_present":true,
//	 "peer":{...},"invalid":0,"own":{...}}                           (one per call)
//	{"event":"pressure","pressure":{...}}       (after each -control-stdin line)
//	{"event":"stopped","calls":3,"shed":1,"invalid":0}               (on SIGTERM)
//
// It registers health and server reflection (grpcurl ADDR list works); with
// -tls-cert and -tls-key it serves TLS; with -metrics-listen it serves
// Prometheus /metrics (package prommetrics) on that address.
//
// With -control-stdin, each line read from stdin is a JSON object
// {"usage_ratio":0.97,"level":3,"alloc_rate_ratio":2.5} (level optional: from
// the ladder's thresholds) that replaces the reported pressure.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	inventoryv1 "github.com/memcontract/memcontract/examples/go/gen/inventory/v1"
	"github.com/memcontract/memcontract/examples/go/internal/cli"
	"github.com/memcontract/memcontract/examples/go/inventory"
	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
	"github.com/memcontract/memcontract/go/memcontract"
	"github.com/memcontract/memcontract/go/memcontract/prommetrics"
)

// switchSource is a Source whose underlying source can be replaced.
type switchSource struct {
	mu  sync.RWMutex
	src memcontract.Source
}

func (s *switchSource) Pressure() memcontract.Pressure {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.src.Pressure()
}

func (s *switchSource) set(src memcontract.Source) {
	s.mu.Lock()
	s.src = src
	s.mu.Unlock()
}

type callLine struct {
	Event       string                `json:"event"`
	Method      string                `json:"method"`
	Code        string                `json:"code"`
	Shed        bool                  `json:"shed"`
	PeerPresent bool                  `json:"peer_present"`
	Peer        *memcontract.Pressure `json:"peer"`
	Invalid     int                   `json:"invalid"`
	Own         memcontract.Pressure  `json:"own"`
}

func main() {
	var (
		f            cli.Flags
		listen       = flag.String("listen", "127.0.0.1:0", "address to listen on (loopback only)")
		controlStdin = flag.Bool("control-stdin", false, "read pressure overrides as JSON lines from stdin")
		grace        = flag.Duration("grace", 5*time.Second, "time to drain in-flight calls on SIGTERM")
		tlsCert      = flag.String("tls-cert", "", "PEM certificate to serve TLS with (with -tls-key)")
		tlsKey       = flag.String("tls-key", "", "PEM private key of -tls-cert")
		metrics      = flag.String("metrics-listen", "", "serve Prometheus /metrics on this address (loopback only; default: none)")
	)
	f.Register(flag.CommandLine, "inventory")
	flag.Parse()
	if err := cli.CheckLoopback(*listen); err != nil {
		cli.Fatal(err)
	}
	version, module, err := f.LoadModule()
	if err != nil {
		cli.Fatal(err)
	}
	// on_stuck: recycle drains and exits with EX_TEMPFAIL for a supervisor
	// to restart the process, as the Python example server does.
	recycle := make(chan struct{}, 1)
	f.Recycle = func(memcontract.Pressure) {
		select {
		case recycle <- struct{}{}:
		default:
		}
	}
	base, _, stopSource, err := f.Source(version, module)
	if err != nil {
		cli.Fatal(err)
	}
	defer stopSource()
	src := &switchSource{src: base}

	out := cli.NewPrinter()
	var calls atomic.Int64
	printCall := func(ci memcontract.CallInfo) {
		calls.Add(1)
		line := callLine{
			Event: "call", Method: ci.Method, Code: cli.CodeName(ci.Code), Shed: ci.Shed,
			PeerPresent: ci.PeerOK, Invalid: ci.Invalid, Own: ci.Own,
		}
		if ci.PeerOK {
			line.Peer = &ci.Peer
		}
		out.Print(line)
	}
	srv := memcontract.NewServer(src, module, memcontract.WithCallObserver(printCall))

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		cli.Fatal(err)
	}
	opts := srv.ServerOptions()
	if *tlsCert != "" || *tlsKey != "" {
		creds, err := credentials.NewServerTLSFromFile(*tlsCert, *tlsKey)
		if err != nil {
			cli.Fatal(err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	s := grpc.NewServer(opts...)
	// Through the Registrar, a request that fails to decode carries the trailers too.
	inventoryv1.RegisterInventoryServiceServer(srv.Registrar(s), &inventory.Service{})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	if err := memcontract.RegisterPressureServices(s, srv); err != nil {
		cli.Fatal(err)
	}
	reflection.Register(s)

	port := lis.Addr().(*net.TCPAddr).Port
	out.Print(map[string]any{"event": "listening", "address": lis.Addr().String(), "port": port})
	if *metrics != "" {
		// The sampler itself keeps the time at each level; a replaced source is observed.
		var metricsSrc memcontract.Source = src
		if !*controlStdin {
			metricsSrc = base
		}
		addr, err := serveMetrics(*metrics, metricsSrc, module)
		if err != nil {
			cli.Fatal(err)
		}
		out.Print(map[string]any{"event": "metrics", "address": addr.String(), "port": addr.Port})
	}

	if *controlStdin {
		go control(src, version, module, out)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var exitCode atomic.Int32
	go func() {
		select {
		case <-sig:
		case <-recycle:
			exitCode.Store(recycleExitStatus)
		}
		hs.Shutdown()
		done := make(chan struct{})
		go func() { s.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(*grace):
			s.Stop()
		}
	}()
	if err := s.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out.Print(map[string]any{"event": "stopped", "calls": calls.Load(), "shed": srv.ShedCount(), "invalid": srv.InvalidCount()})
	stopSource()
	os.Exit(int(exitCode.Load()))
}

// serveMetrics serves /metrics on addr (loopback only) in the background.
func serveMetrics(addr string, src memcontract.Source, module *memcontractv1.ModuleContract) (*net.TCPAddr, error) {
	if err := cli.CheckLoopback(addr); err != nil {
		return nil, fmt.Errorf("-metrics-listen: %w", err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", prommetrics.Handler(src, module))
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(lis) }()
	return lis.Addr().(*net.TCPAddr), nil
}

// recycleExitStatus is EX_TEMPFAIL ("temporary failure, retry"), the status
// of a process that recycles itself (Python's RECYCLE_EXIT_STATUS).
const recycleExitStatus = 75

type override struct {
	UsageRatio     float64 `json:"usage_ratio"`
	Level          *int    `json:"level"`
	AllocRateRatio float64 `json:"alloc_rate_ratio"`
}

// control replaces the reported pressure with each JSON line on stdin.
func control(src *switchSource, version string, module *memcontractv1.ModuleContract, out *cli.Printer) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var o override
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			out.Print(map[string]any{"event": "error", "error": err.Error()})
			continue
		}
		level := -1
		if o.Level != nil {
			level = *o.Level
		}
		if level > 3 {
			out.Print(map[string]any{"event": "error", "error": fmt.Sprintf("level %d: want 0..3", level)})
			continue
		}
		p := cli.Forced(version, module, o.UsageRatio, level, o.AllocRateRatio)
		src.set(memcontract.NewStaticSource(p))
		out.Print(map[string]any{"event": "pressure", "pressure": p})
	}
}
