// Package inventory implements inventory.v1.InventoryService, the example
// service of the Go interoperability demo. Every response carries the
// caller's pressure as the handler saw it (memcontract.PeerPressureFromContext).
package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	inventoryv1 "github.com/memcontract/memcontract/examples/go/gen/inventory/v1"
	"github.com/memcontract/memcontract/examples/go/memcontract"
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

// GetItem returns one item; FailSKU fails with codes.NotFound.
func (*Service) GetItem(ctx context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.GetItemResponse, error) {
	if req.GetSku() == FailSKU {
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	}
	return &inventoryv1.GetItemResponse{
		Item:   &inventoryv1.Item{Sku: req.GetSku(), Quantity: int64(len(req.GetSku()))},
		Caller: Caller(ctx),
	}, nil
}

// ListItems streams req.count items (at most 1000).
func (*Service) ListItems(req *inventoryv1.ListItemsRequest, stream inventoryv1.InventoryService_ListItemsServer) error {
	n := min(max(req.GetCount(), 0), 1000)
	for i := range n {
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

// Ping answers a liveness probe.
func (*Service) Ping(ctx context.Context, _ *inventoryv1.PingRequest) (*inventoryv1.PingResponse, error) {
	return &inventoryv1.PingResponse{Caller: Caller(ctx)}, nil
}
