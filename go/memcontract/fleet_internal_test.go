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

// TestAnErrorRatioThatMovesIsAChange: a quiet server's ORCA report carries
// its errors over calls; a move of 5 points is told again, as usage is (a
// report told while shed calls still counted, just out of level 3, would
// otherwise hold a balancer's weight down until the refresh).
func TestAnErrorRatioThatMovesIsAChange(t *testing.T) {
	told := wireVersion{quiet: true, usage: 0.42, errors: 0.40}
	for _, c := range []struct {
		errors float64
		want   bool
	}{{0.40, false}, {0.36, false}, {0.35, true}, {0, true}} {
		v := told
		v.errors = c.errors
		if got := v.changedSince(told); got != c.want {
			t.Errorf("errors %.2f after %.2f: changed %v, want %v", c.errors, told.errors, got, c.want)
		}
	}
}

// TestWhileAPlateauIsRecordedAPointOfUsageIsAChange: the live usage told
// after a level was left on live memory settles over a few seconds, and the
// calls shed just before fall out of the error ratio; with a plateau
// recorded, a move of 1 point of either is told again (5 points otherwise).
func TestWhileAPlateauIsRecordedAPointOfUsageIsAChange(t *testing.T) {
	for _, c := range []struct {
		plateau       bool
		usage, errors float64
		want          bool
	}{
		{true, 0.546, 0.036, false}, {true, 0.54, 0.04, true}, {true, 0.546, 0.03, true},
		{false, 0.54, 0.0, false}, {false, 0.50, 0.04, true},
	} {
		told := wireVersion{quiet: true, usage: 0.55, errors: 0.04, plateau: c.plateau}
		v := told
		v.usage, v.errors = c.usage, c.errors
		if got := v.changedSince(told); got != c.want {
			t.Errorf("plateau %v, usage 0.55 then %.3f, errors 0.04 then %.3f: changed %v, want %v",
				c.plateau, c.usage, c.errors, got, c.want)
		}
	}
}
