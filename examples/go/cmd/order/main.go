// Command order calls inventory.v1.InventoryService through the memcontract
// client interceptors and prints what came back, for the Go
// interoperability tests and by hand.
//
//	order -target 127.0.0.1:40123 -n 3 -method get -force-usage 0.7
//
// Output on stdout, one JSON object a line:
//
//	{"event":"call","seq":1,"method":"/inventory.v1.InventoryService/GetItem",
//	 "code":"RESOURCE_EXHAUSTED","message":"...",
//	 "trailers":{"x-memory-usage":"97%","x-memory-capacity":"1024",...},
//	 "peer_present":true,"peer":{...},"invalid":0,
//	 "orca":{"mem_utilization":0.97,"named_metrics":{"memcontract.level":3,...}},
//	 "retry_pushback_ms":1000,"caller_seen":{...},"messages":0}
//	{"event":"done","calls":3,"codes":{"OK":2,"RESOURCE_EXHAUSTED":1}}
//
// The exit status is 0 when every call was made (whatever their status
// codes), 2 on bad flags or contract.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"io"
	"strconv"
	"strings"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/memcontract/memcontract/examples/go/gen/inventory/v1"
	"github.com/memcontract/memcontract/examples/go/internal/cli"
	"github.com/memcontract/memcontract/go/memcontract"
)

var methods = map[string]string{
	"get":     "/inventory.v1.InventoryService/GetItem",
	"list":    "/inventory.v1.InventoryService/ListItems",
	"reserve": "/inventory.v1.InventoryService/Reserve",
	"ping":    "/inventory.v1.InventoryService/Ping",
	"health":  "/grpc.health.v1.Health/Check",
}

type orcaJSON struct {
	MemUtilization float64            `json:"mem_utilization"`
	CPUUtilization float64            `json:"cpu_utilization"`
	NamedMetrics   map[string]float64 `json:"named_metrics"`
}

type callerJSON struct {
	Present    bool    `json:"present"`
	UsageRatio float64 `json:"usage_ratio"`
	Level      int32   `json:"level"`
	Module     string  `json:"module"`
	Invalid    int32   `json:"invalid"`
}

type callLine struct {
	Event           string                `json:"event"`
	Seq             int                   `json:"seq"`
	Method          string                `json:"method"`
	Code            string                `json:"code"`
	Message         string                `json:"message"`
	Trailers        map[string]string     `json:"trailers"`
	PeerPresent     bool                  `json:"peer_present"`
	Peer            *memcontract.Pressure `json:"peer"`
	Invalid         int                   `json:"invalid"`
	ORCA            *orcaJSON             `json:"orca"`
	RetryPushbackMs *int64                `json:"retry_pushback_ms"`
	CallerSeen      *callerJSON           `json:"caller_seen"`
	Messages        int                   `json:"messages"`
}

func main() {
	var (
		f        cli.Flags
		target   = flag.String("target", "", "inventory server address host:port (loopback only; required)")
		n        = flag.Int("n", 1, "number of calls")
		method   = flag.String("method", "get", "method to call: get, list, reserve, ping or health")
		sku      = flag.String("sku", "abc", "SKU for get and reserve (\"missing\" makes GetItem fail with NOT_FOUND)")
		count    = flag.Int("count", 3, "items to stream for list; messages to send for reserve")
		timeout  = flag.Duration("timeout", 5*time.Second, "deadline of each call")
		interval = flag.Duration("interval", 0, "pause between calls")
		fastFail = flag.Bool("fast-fail", false, "fail non-core calls locally while the target reports level 3")
	)
	f.Register(flag.CommandLine, "order")
	flag.Parse()
	full, ok := methods[*method]
	if !ok {
		cli.Fatal(errors.New("-method: want get, list, reserve, ping or health"))
	}
	if err := cli.CheckLoopback(*target); err != nil {
		cli.Fatal(err)
	}
	version, module, err := f.LoadModule()
	if err != nil {
		cli.Fatal(err)
	}
	src, _, stop, err := f.Source(version, module)
	if err != nil {
		cli.Fatal(err)
	}
	defer stop()

	var opts []memcontract.ClientOption
	if *fastFail {
		opts = append(opts, memcontract.WithContractFastFail(module))
	}
	client := memcontract.NewClient(src, opts...)
	conn, err := grpc.NewClient(*target, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, client.DialOptions()...)...)
	if err != nil {
		cli.Fatal(err)
	}
	defer conn.Close()
	inv := inventoryv1.NewInventoryServiceClient(conn)
	health := healthpb.NewHealthClient(conn)

	out := cli.NewPrinter()
	codes := map[string]int{}
	for i := 1; i <= *n; i++ {
		if i > 1 && *interval > 0 {
			time.Sleep(*interval)
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		var tr metadata.MD
		var caller *inventoryv1.CallerPressure
		msgs := 0
		switch *method {
		case "get":
			var r *inventoryv1.GetItemResponse
			r, err = inv.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: *sku}, grpc.Trailer(&tr))
			caller = r.GetCaller()
			if err == nil {
				msgs = 1
			}
		case "ping":
			var r *inventoryv1.PingResponse
			r, err = inv.Ping(ctx, &inventoryv1.PingRequest{}, grpc.Trailer(&tr))
			caller = r.GetCaller()
			if err == nil {
				msgs = 1
			}
		case "health":
			_, err = health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Trailer(&tr))
			if err == nil {
				msgs = 1
			}
		case "list":
			caller, msgs, err = list(ctx, inv, int32(*count), &tr)
		case "reserve":
			caller, msgs, err = reserve(ctx, inv, *sku, *count, &tr)
		}
		cancel()
		st := status.Convert(err)
		codes[cli.CodeName(st.Code())]++
		out.Print(describe(i, full, st, tr, caller, msgs))
	}
	out.Print(map[string]any{"event": "done", "calls": *n, "codes": codes, "fast_failed": client.FastFailCount()})
}

func list(ctx context.Context, inv inventoryv1.InventoryServiceClient, count int32, tr *metadata.MD) (*inventoryv1.CallerPressure, int, error) {
	s, err := inv.ListItems(ctx, &inventoryv1.ListItemsRequest{Count: count}, grpc.Trailer(tr))
	if err != nil {
		return nil, 0, err
	}
	var caller *inventoryv1.CallerPressure
	n := 0
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return caller, n, nil
		}
		if err != nil {
			return caller, n, err
		}
		caller = r.GetCaller()
		n++
	}
}

func reserve(ctx context.Context, inv inventoryv1.InventoryServiceClient, sku string, count int, tr *metadata.MD) (*inventoryv1.CallerPressure, int, error) {
	s, err := inv.Reserve(ctx, grpc.Trailer(tr))
	if err != nil {
		return nil, 0, err
	}
	for range count {
		if err := s.Send(&inventoryv1.ReserveRequest{Sku: sku, Quantity: 1}); err != nil {
			break // the status comes from CloseAndRecv
		}
	}
	r, err := s.CloseAndRecv()
	if err != nil {
		return nil, 0, err
	}
	return r.GetCaller(), 1, nil
}

func describe(seq int, method string, st *status.Status, tr metadata.MD, caller *inventoryv1.CallerPressure, msgs int) callLine {
	line := callLine{
		Event: "call", Seq: seq, Method: method, Code: cli.CodeName(st.Code()), Message: st.Message(),
		Trailers: map[string]string{}, Messages: msgs,
	}
	for k, vs := range tr {
		if len(vs) == 0 || !(strings.HasPrefix(k, "x-memory-") || k == memcontract.LoadReportKey || k == memcontract.RetryPushbackKey) {
			continue
		}
		v := vs[len(vs)-1]
		if strings.HasSuffix(k, "-bin") {
			v = base64.StdEncoding.EncodeToString([]byte(v))
		}
		line.Trailers[k] = v
	}
	p, ok, invalid := memcontract.Decode(tr)
	line.PeerPresent, line.Invalid = ok, invalid
	if ok {
		line.Peer = &p
	}
	if vs := tr.Get(memcontract.LoadReportKey); len(vs) > 0 {
		var r v3orcapb.OrcaLoadReport
		if proto.Unmarshal([]byte(vs[len(vs)-1]), &r) == nil {
			line.ORCA = &orcaJSON{MemUtilization: r.GetMemUtilization(), CPUUtilization: r.GetCpuUtilization(), NamedMetrics: r.GetNamedMetrics()}
		}
	}
	if vs := tr.Get(memcontract.RetryPushbackKey); len(vs) > 0 {
		if ms, err := strconv.ParseInt(vs[len(vs)-1], 10, 64); err == nil {
			line.RetryPushbackMs = &ms
		}
	}
	if caller != nil {
		line.CallerSeen = &callerJSON{
			Present: caller.GetPresent(), UsageRatio: caller.GetUsageRatio(), Level: caller.GetLevel(),
			Module: caller.GetModule(), Invalid: caller.GetInvalid(),
		}
	}
	return line
}
