package memcontract

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/tap"
)

// TestCallsAndErrorsCounted: every call the interceptor ends counts once
// (rps_fractional), every failed one as an error (eps), and a call shed in
// the transport (WithEarlyShed) counts as both, as a shed call does in the
// interceptor.
func TestCallsAndErrorsCounted(t *testing.T) {
	src := NewStaticSource(Pressure{UsageRatio: 0.5})
	s := NewServer(src, DefaultModule("api"), WithEarlyShed())
	unary := s.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/shop.Cart/Add"}
	ok := func(context.Context, any) (any, error) { return "done", nil }
	fail := func(context.Context, any) (any, error) { return nil, errors.New("boom") }
	for _, h := range []grpc.UnaryHandler{ok, ok, fail} {
		_, _ = unary(context.Background(), nil, info, h)
	}
	if s.calls.Load() != 3 || s.errors.Load() != 1 {
		t.Fatalf("calls %d, errors %d after 2 OK and 1 failed call; want 3, 1", s.calls.Load(), s.errors.Load())
	}
	src.Set(atLevel3(0.99))
	if _, err := s.TapHandle(context.Background(), &tap.Info{FullMethodName: "/shop.Cart/Add"}); err == nil {
		t.Fatal("TapHandle at level 3 admitted a non-core call")
	}
	if s.calls.Load() != 4 || s.errors.Load() != 2 {
		t.Errorf("calls %d, errors %d after an early shed; want 4, 2", s.calls.Load(), s.errors.Load())
	}
}
