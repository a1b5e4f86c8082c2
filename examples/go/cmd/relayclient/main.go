// Command relayclient makes one call of any arity to
// inventory.v1.InventoryService and prints everything that came back, byte
// for byte, for the gateway's pass-through tests and by hand.
//
//	relayclient -target 127.0.0.1:40123 -method exchange -n 3 \
//	    -md x-echo-a=1 -md x-echo-b-bin=AAEC -timeout 5s
//
// Output on stdout, one JSON object:
//
//	{"event":"result","method":"/inventory.v1.InventoryService/Exchange",
//	 "code":"OK","message":"","header":{"x-echo-a":["1"]},
//	 "trailer":{"x-echo-a":["1"],"x-memory-level":["0"],...},
//	 "messages":["CgYKBHNrdS0w..."],"sent":3}
//
// Values of -bin keys are base64 (standard, padded) on the command line and
// in the output; messages are the responses' deterministic protobuf encoding
// in base64. The exit status is 0 when the call was made (whatever its status
// code), 2 on bad flags.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/memcontract/memcontract/examples/go/gen/inventory/v1"
	"github.com/memcontract/memcontract/examples/go/internal/cli"
)

const service = "/inventory.v1.InventoryService/"

var methods = map[string]string{
	"get": "GetItem", "list": "ListItems", "reserve": "Reserve", "exchange": "Exchange", "ping": "Ping",
}

// pairs is a repeatable -md key=value flag.
type pairs []string

func (p *pairs) String() string     { return strings.Join(*p, ",") }
func (p *pairs) Set(v string) error { *p = append(*p, v); return nil }

type result struct {
	Event    string              `json:"event"`
	Method   string              `json:"method"`
	Code     string              `json:"code"`
	Message  string              `json:"message"`
	Header   map[string][]string `json:"header"`
	Trailer  map[string][]string `json:"trailer"`
	Messages []string            `json:"messages"`
	Sent     int                 `json:"sent"`
}

// call holds one call's flags and what came back.
type call struct {
	client   inventoryv1.InventoryServiceClient
	sku      string
	n        int
	interval int
	header   metadata.MD
	trailer  metadata.MD
	messages []string
	sent     int
}

func main() {
	var md pairs
	var (
		target      = flag.String("target", "", "address of the service or gateway (loopback only)")
		method      = flag.String("method", "get", "get, list, reserve, exchange or ping")
		n           = flag.Int("n", 3, "messages to send (reserve, exchange) or items to ask for (list)")
		sku         = flag.String("sku", "sku-1", "SKU sent (get: \"missing\" fails with NOT_FOUND)")
		interval    = flag.Int("interval-ms", 0, "list: pause the server makes before each item, ms")
		timeout     = flag.Duration("timeout", 10*time.Second, "deadline of the call (0: none)")
		cancelAfter = flag.Duration("cancel-after", 0, "cancel the call after this long (0: never)")
		tlsCA       = flag.String("tls-ca", "", "PEM CA to verify the server with (TLS; default: plaintext)")
		serverName  = flag.String("server-name", "", "name the server's certificate must carry (TLS)")
	)
	flag.Var(&md, "md", "request metadata key=value (repeatable; -bin values in base64)")
	flag.Parse()
	name, ok := methods[*method]
	if !ok {
		cli.Fatal(fmt.Errorf("-method %q: want get, list, reserve, exchange or ping", *method))
	}
	if err := cli.CheckLoopback(*target); err != nil {
		cli.Fatal(err)
	}
	outgoing, err := parseMetadata(md)
	if err != nil {
		cli.Fatal(err)
	}
	creds := insecure.NewCredentials()
	if *tlsCA != "" {
		if creds, err = credentials.NewClientTLSFromFile(*tlsCA, *serverName); err != nil {
			cli.Fatal(err)
		}
	}
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(creds))
	if err != nil {
		cli.Fatal(err)
	}
	defer conn.Close()

	ctx := metadata.NewOutgoingContext(context.Background(), outgoing)
	var cancel context.CancelFunc
	if *timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, *timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	if *cancelAfter > 0 {
		time.AfterFunc(*cancelAfter, cancel)
	}
	c := &call{client: inventoryv1.NewInventoryServiceClient(conn), sku: *sku, n: *n, interval: *interval}
	err = c.run(ctx, *method)
	st := status.Convert(err)
	cli.NewPrinter().Print(result{
		Event: "result", Method: service + name, Code: cli.CodeName(st.Code()), Message: st.Message(),
		Header: textual(c.header), Trailer: textual(c.trailer), Messages: c.messages, Sent: c.sent,
	})
}

func parseMetadata(md pairs) (metadata.MD, error) {
	out := metadata.MD{}
	for _, kv := range md {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-md %q: want key=value", kv)
		}
		if strings.HasSuffix(k, "-bin") {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return nil, fmt.Errorf("-md %q: -bin value is not base64: %v", kv, err)
			}
			v = string(raw)
		}
		out.Append(k, v)
	}
	return out, nil
}

// textual is md with -bin values in base64 and every value list in order.
func textual(md metadata.MD) map[string][]string {
	out := map[string][]string{}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range md[k] {
			if strings.HasSuffix(k, "-bin") {
				v = base64.StdEncoding.EncodeToString([]byte(v))
			}
			out[k] = append(out[k], v)
		}
	}
	return out
}

func (c *call) keep(m proto.Message) {
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		cli.Fatal(err)
	}
	c.messages = append(c.messages, base64.StdEncoding.EncodeToString(raw))
}

func (c *call) run(ctx context.Context, method string) error {
	switch method {
	case "get":
		c.sent = 1
		resp, err := c.client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: c.sku}, grpc.Header(&c.header), grpc.Trailer(&c.trailer))
		if err == nil {
			c.keep(resp)
		}
		return err
	case "ping":
		c.sent = 1
		resp, err := c.client.Ping(ctx, &inventoryv1.PingRequest{}, grpc.Header(&c.header), grpc.Trailer(&c.trailer))
		if err == nil {
			c.keep(resp)
		}
		return err
	case "list":
		return c.list(ctx)
	case "reserve":
		return c.reserve(ctx)
	default:
		return c.exchange(ctx)
	}
}

func (c *call) list(ctx context.Context) error {
	stream, err := c.client.ListItems(ctx, &inventoryv1.ListItemsRequest{Count: int32(c.n), IntervalMs: int32(c.interval)})
	if err != nil {
		return err
	}
	c.sent = 1
	defer func() { c.trailer = stream.Trailer() }()
	if c.header, err = stream.Header(); err != nil {
		return recvErr(stream.RecvMsg(new(inventoryv1.ListItemsResponse)))
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return recvErr(err)
		}
		c.keep(resp)
	}
}

func (c *call) reserve(ctx context.Context) error {
	stream, err := c.client.Reserve(ctx)
	if err != nil {
		return err
	}
	defer func() { c.trailer = stream.Trailer() }()
	for i := range c.n {
		if err := stream.Send(&inventoryv1.ReserveRequest{Sku: c.sku, Quantity: int64(i + 1)}); err != nil {
			break // the status comes from CloseAndRecv
		}
		c.sent++
	}
	resp, err := stream.CloseAndRecv()
	c.header, _ = stream.Header()
	if err == nil {
		c.keep(resp)
	}
	return err
}

func (c *call) exchange(ctx context.Context) error {
	stream, err := c.client.Exchange(ctx)
	if err != nil {
		return err
	}
	defer func() { c.trailer = stream.Trailer() }()
	for i := range c.n {
		if err := stream.Send(&inventoryv1.ExchangeRequest{Sku: fmt.Sprintf("%s-%d", c.sku, i), Quantity: int64(i)}); err != nil {
			return recvErr(stream.RecvMsg(new(inventoryv1.ExchangeResponse)))
		}
		c.sent++
		if i == 0 {
			c.header, _ = stream.Header()
		}
		resp, err := stream.Recv() // one answer per request, in order
		if err != nil {
			return recvErr(err)
		}
		c.keep(resp)
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if c.n == 0 {
		c.header, _ = stream.Header()
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return recvErr(err)
	}
	return nil
}

// recvErr is the call's status from a receive error (io.EOF: OK).
func recvErr(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
