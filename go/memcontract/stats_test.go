package memcontract_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/memcontract/memcontract/go/memcontract"
)

func TestProbeFailuresAndTimeAtLevel(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	usage, fail := 0.5, false
	probe := memcontract.ProbeFunc(func(budget uint64) (memcontract.Reading, error) {
		if fail {
			return memcontract.Reading{}, status.Error(codes.Unavailable, "no memory source")
		}
		return memcontract.Reading{UsedBytes: uint64(usage * float64(budget)), CapacityBytes: budget, FailedSources: []string{"cgroup"}}, nil
	})
	m := memcontract.DefaultModule("api")
	m.AllocRateMbPerSec = 1 << 20 // growth never counts here
	before := memcontract.ReadCounters().ProbeFailures
	s := memcontract.NewSampler("v1", m, memcontract.WithProbe(probe), memcontract.WithClock(func() time.Time { return now }))
	defer s.Stop()
	step := func(u float64) {
		usage = u
		now = now.Add(time.Second)
		s.SampleOnce()
	}
	step(0.5)
	for range 3 {
		step(0.97) // levels 1, 2, 3
	}
	fail = true
	step(0.97)
	now = now.Add(2 * time.Second)
	want := [4]time.Duration{2 * time.Second, time.Second, time.Second, 3 * time.Second}
	if got := s.TimeAtLevel(); got != want {
		t.Errorf("TimeAtLevel() = %v, want %v", got, want)
	}
	after := memcontract.ReadCounters().ProbeFailures
	if got := after["read"] - before["read"]; got != 1 {
		t.Errorf("read failures counted %d, want 1", got)
	}
	if got := after["cgroup"] - before["cgroup"]; got != 5 {
		t.Errorf("cgroup failures counted %d, want 5 (one per successful reading)", got)
	}
}

func TestCountShedByClass(t *testing.T) {
	before := memcontract.ReadCounters().Shed
	memcontract.CountShed(true)
	memcontract.CountShed(false)
	memcontract.CountShed(false)
	after := memcontract.ReadCounters().Shed
	if got := (memcontract.ByClass{Core: after.Core - before.Core, NonCore: after.NonCore - before.NonCore}); got != (memcontract.ByClass{Core: 1, NonCore: 2}) {
		t.Errorf("CountShed counted %+v, want core 1, noncore 2", got)
	}
}
