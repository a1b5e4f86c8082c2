// Command wrrclient calls grpc.health.v1.Health/Check on a set of backends
// through grpc-go's stock weighted_round_robin balancer and prints, every
// window, how many calls each backend served: the fleet-balancing proof
// (docs/design.md §10) that memcontract's ORCA reports steer an unmodified client.
//
//	wrrclient -targets 127.0.0.1:40001,127.0.0.1:40002,127.0.0.1:40003 [-oob]
//
// The weights come from the per-call ORCA report in each call's trailers,
// or with -oob from each backend's OpenRcaService stream. Output on stdout,
// one JSON object a line:
//
//	{"event":"started","service_config":{...}}
//	{"event":"window","counts":{"127.0.0.1:40001":12,...},"errors":0}
//
// It runs until -duration passes or it is sent SIGTERM; exit status 2 on
// bad flags.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // registers weighted_round_robin
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/memcontract/memcontract/examples/go/internal/cli"
)

func main() {
	fs := flag.NewFlagSet("wrrclient", flag.ContinueOnError)
	targets := fs.String("targets", "", "comma-separated loopback backend addresses (required)")
	oob := fs.Bool("oob", false, "weights from the backends' OpenRcaService streams (enable_oob_load_report)")
	window := fs.Duration("window", 500*time.Millisecond, "how often to print the counts")
	workers := fs.Int("workers", 4, "concurrent callers")
	pause := fs.Duration("pause", 5*time.Millisecond, "pause of each caller between calls")
	duration := fs.Duration("duration", time.Minute, "stop after this long")
	update := fs.Duration("weight-update", 100*time.Millisecond, "weight_update_period")
	expire := fs.Duration("weight-expiration", 3*time.Second, "weight_expiration_period")
	blackout := fs.Duration("blackout", 0, "blackout_period")
	report := fs.Duration("oob-period", 200*time.Millisecond, "oob_reporting_period")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	var addrs []resolver.Address
	for _, a := range strings.Split(*targets, ",") {
		if err := cli.CheckLoopback(a); err != nil || a == "" {
			fmt.Fprintf(os.Stderr, "wrrclient: -targets: %q is not a loopback address\n", a)
			os.Exit(2)
		}
		addrs = append(addrs, resolver.Address{Addr: a})
	}
	wrr := map[string]any{
		"enableOobLoadReport":    *oob,
		"oobReportingPeriod":     seconds(*report),
		"blackoutPeriod":         seconds(*blackout),
		"weightExpirationPeriod": seconds(*expire),
		"weightUpdatePeriod":     seconds(*update),
	}
	sc, _ := json.Marshal(map[string]any{"loadBalancingConfig": []any{map[string]any{"weighted_round_robin": wrr}}})

	r := manual.NewBuilderWithScheme("fleet")
	r.InitialState(resolver.State{Addresses: addrs})
	conn, err := grpc.NewClient(r.Scheme()+":///backends",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(string(sc)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "wrrclient:", err)
		os.Exit(1)
	}
	defer conn.Close()

	out := cli.NewPrinter()
	out.Print(map[string]any{"event": "started", "service_config": json.RawMessage(sc)})

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(ctx, *duration)
	defer cancelRun()

	var mu sync.Mutex
	counts := map[string]int{}
	errs := 0
	health := healthpb.NewHealthClient(conn)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var p peer.Peer
				callCtx, done := context.WithTimeout(ctx, 5*time.Second)
				_, err := health.Check(callCtx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
				done()
				mu.Lock()
				if err != nil {
					errs++
				} else if p.Addr != nil {
					counts[p.Addr.String()]++
				}
				mu.Unlock()
				time.Sleep(*pause)
			}
		}()
	}
	t := time.NewTicker(*window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			mu.Lock()
			line := map[string]any{"event": "window", "counts": counts, "errors": errs}
			counts, errs = map[string]int{}, 0
			mu.Unlock()
			out.Print(line)
		}
	}
}

// seconds formats d as a service-config duration ("0.2s").
func seconds(d time.Duration) string { return fmt.Sprintf("%gs", d.Seconds()) }
