// Package inventory implements inventory.v1.InventoryService, the example
// service of the Go interoperability demo. Every response carries the
// caller's pressure as the handler saw it (memcontract.PeerPressureFromContext).
package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	inventoryv1 "github.com/memcontract/memcontract/examples/go/gen/inventory/v1"
	"github.com/memcontract/memcontract/go/memcontract"
)

// FailSKU is the SKU for which GetItem fails with codes.NotFound, to test
// trailers on handler errors.
const FailSKU = "missing"

// Service implements inventoryv1.InventoryServiceServer.
type Service struct {
	inventoryv1.UnimplementedInventoryServiceServer
}

// Caller returns the caller's pressure in ctx as a CallerPressure message.
func Caller(ctx context.Context) *inventoryv1.CallerPressure {
	p, ok := memcontract.PeerPressureFromContext(ctx)
	return &inventoryv1.CallerPressure{
		Present:    ok,
		UsageRatio: p.UsageRatio,
		Level:      int32(p.Level),
		Module:     p.Module,
		Invalid:    int32(memcontract.InvalidPeerValuesFromContext(ctx)),
	}
}

// EchoPrefix marks the request metadata every method sends back, in its
// response headers and in its trailers (for proxies' pass-through tests).
const EchoPrefix = "x-echo-"

// DeadlineHeader is the response header giving the call's deadline as the
// handler saw it: milliseconds left when the handler started.
const DeadlineHeader = "x-echo-deadline-ms"

// echo returns the header and trailer a handler sends back: the request's
// EchoPrefix keys (and DeadlineHeader when the call has a deadline).
func echo(ctx context.Context) (header, trailer metadata.MD) {
	header, trailer = metadata.MD{}, metadata.MD{}
	md, _ := metadata.FromIncomingContext(ctx)
	for k, v := range md {
		if strings.HasPrefix(k, EchoPrefix) {
			header[k] = v
			trailer[k] = v
		}
	}
	if d, ok := ctx.Deadline(); ok {
		header.Set(DeadlineHeader, strconv.FormatInt(time.Until(d).Milliseconds(), 10))
	}
	return header, trailer
}

// echoStream sends echo's header and sets its trailer on a stream.
func echoStream(stream grpc.ServerStream) error {
	header, trailer := echo(stream.Context())
	stream.SetTrailer(trailer)
	return stream.SendHeader(header)
}

// GetItem returns one item; FailSKU fails with codes.NotFound.
func (*Service) GetItem(ctx context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.GetItemResponse, error) {
	header, trailer := echo(ctx)
	_ = grpc.SetHeader(ctx, header)
	_ = grpc.SetTrailer(ctx, trailer)
	if req.GetSku() == FailSKU {
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	}
	return &inventoryv1.GetItemResponse{
		Item:   &inventoryv1.Item{Sku: req.GetSku(), Quantity: int64(len(req.GetSku()))},
		Caller: Caller(ctx),
	}, nil
}

// ListItems streams req.count items (at most 1000), req.interval_ms apart.
func (*Service) ListItems(req *inventoryv1.ListItemsRequest, stream inventoryv1.InventoryService_ListItemsServer) error {
	if err := echoStream(stream); err != nil {
		return err
	}
	n := min(max(req.GetCount(), 0), 1000)
	interval := time.Duration(max(req.GetIntervalMs(), 0)) * time.Millisecond
	for i := range n {
		if interval > 0 {
			select {
			case <-stream.Context().Done():
				return status.FromContextError(stream.Context().Err()).Err()
			case <-time.After(interval):
			}
		}
		err := stream.Send(&inventoryv1.ListItemsResponse{
			Item:   &inventoryv1.Item{Sku: fmt.Sprintf("sku-%d", i), Quantity: int64(i)},
			Caller: Caller(stream.Context()),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Reserve sums the quantities of a client stream.
func (*Service) Reserve(stream inventoryv1.InventoryService_ReserveServer) error {
	if err := echoStream(stream); err != nil {
		return err
	}
	var total int64
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&inventoryv1.ReserveResponse{Reserved: total, Caller: Caller(stream.Context())})
		}
		if err != nil {
			return err
		}
		total += req.GetQuantity()
	}
}

// Exchange answers each request with the item asked for, as it comes.
func (*Service) Exchange(stream inventoryv1.InventoryService_ExchangeServer) error {
	if err := echoStream(stream); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		err = stream.Send(&inventoryv1.ExchangeResponse{
			Item:   &inventoryv1.Item{Sku: req.GetSku(), Quantity: req.GetQuantity()},
			Caller: Caller(stream.Context()),
		})
		if err != nil {
			return err
		}
	}
}

// Ping answers a liveness probe.
func (*Service) Ping(ctx context.Context, _ *inventoryv1.PingRequest) (*inventoryv1.PingResponse, error) {
	return &inventoryv1.PingResponse{Caller: Caller(ctx)}, nil
}
