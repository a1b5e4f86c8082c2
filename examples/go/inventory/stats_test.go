package inventory_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	inventoryv1 "github.com/memcontract/memcontract/examples/go/gen/inventory/v1"
	"github.com/memcontract/memcontract/go/memcontract"
)

// callCounts are the per-call counters a test compares.
type callCounts struct {
	Shed, FastFailed memcontract.ByClass
	Untrusted        int64
}

// counted returns what fn adds to the process-wide per-call counters.
func counted(fn func()) callCounts {
	before := memcontract.ReadCounters()
	fn()
	after := memcontract.ReadCounters()
	sub := func(a, b memcontract.ByClass) memcontract.ByClass {
		return memcontract.ByClass{Core: a.Core - b.Core, NonCore: a.NonCore - b.NonCore}
	}
	return callCounts{
		Shed:       sub(after.Shed, before.Shed),
		FastFailed: sub(after.FastFailed, before.FastFailed),
		Untrusted:  after.Untrusted - before.Untrusted,
	}
}

func TestShedsAndFastFailsAreCountedByClass(t *testing.T) {
	e := newEnv(t, memcontract.WithFastFail([]string{pingMethod}, time.Second))
	e.serverSrc.Set(memcontract.Pressure{UsageRatio: 0.99, Level: memcontract.LevelCritical, Module: "inventory"})
	got := counted(func() {
		for range 2 { // shed by the server, then failed fast by the client
			if _, err := e.inv.GetItem(ctx(t), &inventoryv1.GetItemRequest{}); status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("GetItem() = %v, want ResourceExhausted", err)
			}
		}
		if _, err := e.inv.Ping(ctx(t), &inventoryv1.PingRequest{}); err != nil {
			t.Fatalf("core Ping() = %v, want OK", err)
		}
	})
	want := callCounts{Shed: memcontract.ByClass{NonCore: 1}, FastFailed: memcontract.ByClass{NonCore: 1}}
	if got != want {
		t.Errorf("counted %+v, want %+v", got, want)
	}
}
