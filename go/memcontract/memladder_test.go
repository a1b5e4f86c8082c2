package memcontract

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestMemoryLadderSharedCases steps the memory-ladder cases that Python's
// MemoryLadder steps too (tests/vectors/ladder/memory.json).
func TestMemoryLadderSharedCases(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(vectorDir, "ladder", "memory.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []struct {
			Name         string   `json:"name"`
			CapacityMiB  float64  `json:"capacity_mib"`
			IntervalS    float64  `json:"interval_s"`
			PromisedMiBS float64  `json:"promised_mib_per_s"`
			LiveExit     bool     `json:"live_exit"`
			Recycles     bool     `json:"recycles"`
			Levels       []Level  `json:"levels"`
			PlateauMiB   []*int64 `json:"plateau_mib"`
			Samples      []struct {
				T        float64  `json:"t"`
				UsedMiB  float64  `json:"used_mib"`
				LiveMiB  *float64 `json:"live_mib"`
				LimitMiB *float64 `json:"limit_mib"`
			} `json:"samples"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Cases) < 10 {
		t.Fatalf("memory.json: %v, %d cases", err, len(doc.Cases))
	}
	start := time.Unix(1_800_000_000, 0)
	for _, tc := range doc.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			m := DefaultModule("api")
			m.SampleIntervalMs = uint32(tc.IntervalS * 1000)
			m.AllocRateMbPerSec = tc.PromisedMiBS
			if tc.Recycles {
				m.OnStuck = OnStuckRecycle
			}
			l := newMemoryLadder(m, tc.LiveExit)
			var levels []Level
			var plateaus []int64
			for _, s := range tc.Samples {
				sample := memorySample{
					at:       start.Add(time.Duration(s.T * float64(time.Second))),
					used:     uint64(s.UsedMiB * MiB),
					capacity: uint64(tc.CapacityMiB * MiB),
				}
				if s.LiveMiB != nil {
					sample.live, sample.hasLive = uint64(*s.LiveMiB*MiB), true
				}
				if s.LimitMiB != nil {
					sample.limitBytes = uint64(*s.LimitMiB * MiB)
				}
				step := l.step(sample)
				levels = append(levels, step.level)
				plateaus = append(plateaus, int64(step.plateau/MiB))
			}
			var want []int64
			for _, p := range tc.PlateauMiB {
				if p == nil {
					want = append(want, 0)
				} else {
					want = append(want, *p)
				}
			}
			if !slices.Equal(levels, tc.Levels) {
				t.Errorf("levels %v, want %v", levels, tc.Levels)
			}
			if !slices.Equal(plateaus, want) {
				t.Errorf("plateaus (MiB) %v, want %v", plateaus, want)
			}
		})
	}
}

// stepClock returns a clock the test moves by hand.
type stepClock struct{ t time.Time }

func (c *stepClock) now() time.Time          { return c.t }
func (c *stepClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestSamplerGapIsNotGrowth: a process stopped and continued (SIGSTOP and
// SIGCONT, CPU throttling, VM steal) sees a long gap, then ticks in quick
// succession; neither reads as growth (issue: 2,576 MiB/s at 3 % usage).
func TestSamplerGapIsNotGrowth(t *testing.T) {
	restoreGC(t)
	clock := &stepClock{t: time.Unix(1_800_000_000, 0)}
	probe := &fakeProbe{used: 40 * MiB, capacity: 1000 * MiB}
	s := NewSampler("v1", DefaultModule("api"), WithProbe(probe), WithClock(clock.now))
	defer s.Stop()
	clock.advance(500 * time.Millisecond)
	s.SampleOnce()
	clock.advance(10 * time.Second) // stopped
	probe.used = 60 * MiB
	if p := s.SampleOnce(); p.AllocRateBytesPerSec != 0 || p.Level != LevelNormal {
		t.Errorf("after a 10 s gap: %v B/s at level %v, want 0 at level 0", p.AllocRateBytesPerSec, p.Level)
	}
	clock.advance(time.Millisecond) // the queued tick, right after
	probe.used = 80 * MiB
	if p := s.SampleOnce(); p.AllocRateBytesPerSec != 0 || p.Level != LevelNormal {
		t.Errorf("1 ms later: %v B/s at level %v, want 0 at level 0", p.AllocRateBytesPerSec, p.Level)
	}
}

// TestSamplerLeavesLevel3OnLiveMemory: flat used memory with low live
// memory leaves level 3 for live's level; peers are told the live usage.
func TestSamplerLeavesLevel3OnLiveMemory(t *testing.T) {
	restoreGC(t)
	clock := &stepClock{t: time.Unix(1_800_000_000, 0)}
	probe := ProbeFunc(func(uint64) (Reading, error) {
		return Reading{UsedBytes: 970 * MiB, CapacityBytes: 1000 * MiB, LiveBytes: 200 * MiB, HasLive: true, LiveSource: "fake"}, nil
	})
	s := NewSampler("v1", DefaultModule("api"), WithProbe(probe), WithClock(clock.now),
		WithoutActions(ActionCollectGarbage))
	defer s.Stop()
	var levels []Level
	for range 5 {
		clock.advance(500 * time.Millisecond)
		levels = append(levels, s.SampleOnce().Level)
	}
	// NewSampler's first sample was level 1; then 2, 3, and three flat samples.
	if want := []Level{2, 3, 3, 3, 0}; !slices.Equal(levels, want) {
		t.Fatalf("levels %v, want %v", levels, want)
	}
	p := s.Pressure()
	if p.UsageRatio != 0.2 || p.PlateauBytes != 970*MiB || p.UsedBytes != 970*MiB || !p.HasLive {
		t.Errorf("pressure %+v, want usage 0.2 (live), plateau and used 970 MiB", p)
	}
	kv := encodePairs(p)
	if kv[0] != UsageKey || kv[1] != "20%" {
		t.Errorf("x-memory-usage %q, want 20%%", kv[1])
	}
}

// TestSamplerHalfOpenStaysShutWhileLiveIsHigh: the calls hold the memory.
func TestSamplerHalfOpenStaysShutWhileLiveIsHigh(t *testing.T) {
	assertHalfOpenShut(t, Reading{UsedBytes: 970 * MiB, CapacityBytes: 1000 * MiB, LiveBytes: 960 * MiB, HasLive: true})
}

// TestSamplerHalfOpenStaysShutAtACgroupLimitWhileLiveIsNotLow: below the
// level-3 threshold half-open may open under a budget, but not at a cgroup
// limit while live memory is at or above the level-1 threshold (the calls
// hold it, and past that limit the kernel kills).
func TestSamplerHalfOpenStaysShutAtACgroupLimitWhileLiveIsNotLow(t *testing.T) {
	assertHalfOpenShut(t, Reading{UsedBytes: 158 * MiB, CapacityBytes: 160 * MiB, LimitBytes: 160 * MiB,
		LiveBytes: 136 * MiB, HasLive: true})
}

// TestSamplerHalfOpenStaysShutWhileLiveReadsAboveUsed: a named source whose
// reading fails the plausibility check is a stale estimate, not a platform
// without one: the memory is taken as held.
func TestSamplerHalfOpenStaysShutWhileLiveReadsAboveUsed(t *testing.T) {
	assertHalfOpenShut(t, Reading{UsedBytes: 970 * MiB, CapacityBytes: 1000 * MiB, LiveBytes: 990 * MiB,
		HasLive: true, LiveSource: "fake"})
}

// TestSamplerHalfOpenWeighsLiveWithTheCalmGap: calm and steady, used 300
// MiB and live 100 MiB of 1000: a gap of 200 MiB the heap does not count
// (the runtime's own, stacks, code). At level 3, live 850 MiB plus that gap
// is over the level-3 threshold: half-open stays shut (weighing the bare
// 850 MiB opened it, and used memory climbed the gap past the threshold: a
// user's trial). With a gap of 50 MiB, 900 MiB is below it: it opens.
func TestSamplerHalfOpenWeighsLiveWithTheCalmGap(t *testing.T) {
	for _, tc := range []struct {
		calmLive uint64
		opens    bool
	}{{100 * MiB, false}, {250 * MiB, true}} {
		restoreGC(t)
		clock := &stepClock{t: time.Unix(1_800_000_000, 0)}
		reading := Reading{UsedBytes: 300 * MiB, CapacityBytes: 1000 * MiB, LiveBytes: tc.calmLive,
			HasLive: true, LiveSource: "fake"}
		probe := ProbeFunc(func(uint64) (Reading, error) { return reading, nil })
		s := NewSampler("v1", DefaultModule("api"), WithProbe(probe), WithClock(clock.now),
			WithoutActions(ActionCollectGarbage))
		for range 3 {
			clock.advance(500 * time.Millisecond)
			s.SampleOnce()
		}
		reading.UsedBytes, reading.LiveBytes = 970*MiB, 850*MiB
		admitted := 0.0
		for range 40 {
			clock.advance(500 * time.Millisecond)
			s.SampleOnce()
			admitted = max(admitted, s.AdmitFraction())
		}
		s.Stop()
		if level := s.Pressure().Level; level != LevelCritical || (admitted > 0) != tc.opens {
			t.Errorf("calm live %d MiB: level %v, admitted up to %v; want level 3, half-open %v",
				tc.calmLive/MiB, level, admitted, tc.opens)
		}
	}
}

// assertHalfOpenShut samples reading 15 times and fails if any non-core call
// is admitted or the level is not 3 at the end.
func assertHalfOpenShut(t *testing.T, reading Reading) {
	t.Helper()
	restoreGC(t)
	clock := &stepClock{t: time.Unix(1_800_000_000, 0)}
	probe := ProbeFunc(func(uint64) (Reading, error) { return reading, nil })
	s := NewSampler("v1", DefaultModule("api"), WithProbe(probe), WithClock(clock.now),
		WithoutActions(ActionCollectGarbage))
	defer s.Stop()
	for range 15 {
		clock.advance(500 * time.Millisecond)
		s.SampleOnce()
		if s.AdmitFraction() != 0 {
			t.Fatalf("admitted %v of non-core calls (reading %+v)", s.AdmitFraction(), reading)
		}
	}
	if s.Pressure().Level != LevelCritical {
		t.Errorf("level %v, want 3", s.Pressure().Level)
	}
}
