package memcontract

import (
	"slices"
	"testing"
)

func atLevel3(usage float64) Pressure { return Pressure{UsageRatio: usage, Level: LevelCritical} }

// step feeds r one sample (not at the hard limit) and runs its effects, as
// the Sampler does after unlocking.
func step(r *recovery, p Pressure) float64 {
	fraction, effects := r.update(p, memoryStep{})
	for _, effect := range effects {
		effect()
	}
	return fraction
}

// TestRecoveryMatchesPython steps the sequence of Python's Recovery
// docstring and wants the same fractions.
func TestRecoveryMatchesPython(t *testing.T) {
	r := newRecovery(DefaultModule("api"), nil)
	released := 0
	r.release = func() { released++ }
	var got []float64
	for _, u := range []float64{1.2, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1} {
		got = append(got, step(r, atLevel3(u)))
	}
	want := []float64{0, 0, 0, 0, 0, 0, 0, 0.125, 0.25, 0.5}
	if !slices.Equal(got, want) {
		t.Errorf("fractions %v, want %v", got, want)
	}
	if released != 1 {
		t.Errorf("released %d times, want once when level 3 stalled", released)
	}
	if f := step(r, atLevel3(1.2)); f != 0 {
		t.Errorf("climbing again: fraction %v, want 0", f)
	}
	if f := step(r, Pressure{UsageRatio: 0.5, Level: LevelDegraded}); f != 0 || r.phase != phaseClosed {
		t.Errorf("below level 3: fraction %v, phase %v", f, r.phase)
	}
}

// TestRecoveryHalfOpenReleasesAgainLessAndLessOften: while half-open and
// flat, memory is handed back every stallSamples samples at first, then
// twice as long each time (as Python's
// test_half_open_and_flat_releases_again_less_and_less_often). In Go this is
// also what reads the live heap again: it is measured only by a collection.
func TestRecoveryHalfOpenReleasesAgainLessAndLessOften(t *testing.T) {
	r := newRecovery(DefaultModule("api"), nil)
	released := 0
	r.release = func() { released++ }
	stall := r.stallSamples
	for range 2*stall + 1 { // level 3 entered, stalled (a release), stuck: half-open
		step(r, atLevel3(1.1))
	}
	if r.fraction != firstFraction || released != 1 {
		t.Fatalf("fraction %v after %d releases, want %v after 1", r.fraction, released, firstFraction)
	}
	var at []int
	for sample := 1; sample < 50; sample++ {
		before := released
		step(r, atLevel3(1.1))
		if released > before {
			at = append(at, sample)
		}
	}
	if want := []int{stall, stall + 2*stall, stall + 6*stall, stall + 14*stall}; !slices.Equal(at, want) {
		t.Errorf("released at samples %v of half-open, want %v", at, want)
	}
	if r.fraction != 1 {
		t.Errorf("fraction %v, want 1", r.fraction)
	}
}

func TestRecoveryGrowthKeepsShedding(t *testing.T) {
	r := newRecovery(DefaultModule("api"), nil)
	r.release = func() {}
	for range 20 {
		p := atLevel3(1.1)
		p.AllocRateRatio = 0.5 // still growing: not stuck
		if f := step(r, p); f != 0 {
			t.Fatalf("fraction %v while memory grows, want 0", f)
		}
	}
}

func TestRecoveryRecyclesWhenAsked(t *testing.T) {
	m := DefaultModule("api")
	recycles := 0
	r := newRecovery(m, func(Pressure) { recycles++ })
	r.recycles = true // on_stuck: recycle
	r.release = func() {}
	for range 12 {
		if f := step(r, atLevel3(1.1)); f != 0 {
			t.Fatalf("fraction %v while recycling, want 0", f)
		}
	}
	if recycles != 1 || r.phase != phaseRecycling {
		t.Errorf("recycled %d times, phase %v; want once", recycles, r.phase)
	}
	// Without a hook, recycle falls back to half-open.
	r2 := newRecovery(m, nil)
	r2.recycles = true
	r2.release = func() {}
	var last float64
	for range 8 {
		last = step(r2, atLevel3(1.1))
	}
	if last == 0 {
		t.Error("on_stuck recycle without a hook never went half-open")
	}
}

// TestRecoveryRecycleWeighsTheBareLiveMemory: at the hard limit with live
// memory at 45 % but a calm gap of 40 % (a small budget, where the process's
// own code and runtime are most of it), the live usage 85 % is not below
// level 1, yet the program holds little of what is used: recycle fires.
func TestRecoveryRecycleWeighsTheBareLiveMemory(t *testing.T) {
	recycles := 0
	r := newRecovery(DefaultModule("api"), func(Pressure) { recycles++ })
	r.recycles = true // on_stuck: recycle
	r.release = func() {}
	p := Pressure{UsageRatio: 0.99, Level: LevelCritical, UsedBytes: 990 * MiB, CapacityBytes: 1000 * MiB,
		LiveBytes: 450 * MiB, HasLive: true, LiveSource: "fake"}
	at := memoryStep{atHardLimit: true, liveRatio: 0.85, hasLiveRatio: true}
	for range 12 {
		_, effects := r.update(p, at)
		for _, effect := range effects {
			effect()
		}
	}
	if recycles != 1 {
		t.Errorf("recycled %d times, want once (bare live 45 %% is low)", recycles)
	}
}

func TestOnStuckDefaultsToHalfOpen(t *testing.T) {
	if got := onStuck(DefaultModule("api")); got != OnStuckHalfOpen {
		t.Errorf("onStuck() = %q, want %q", got, OnStuckHalfOpen)
	}
}

type admitSource struct {
	p     Pressure
	admit float64
}

func (a admitSource) Pressure() Pressure     { return a.p }
func (a admitSource) AdmitFraction() float64 { return a.admit }

func TestHalfOpenServerAdmitsTheFraction(t *testing.T) {
	s := NewServer(admitSource{p: atLevel3(1.1), admit: 0.25}, DefaultModule("api"))
	admitted := 0
	for range 16 {
		if !s.sheds(atLevel3(1.1), "/shop.Cart/Add") {
			admitted++
		}
	}
	if admitted != 4 || s.HalfOpenAdmits() != 4 {
		t.Errorf("admitted %d of 16 at fraction 0.25, want 4", admitted)
	}
	closed := NewServer(admitSource{p: atLevel3(1.1)}, DefaultModule("api"))
	for range 16 {
		if !closed.sheds(atLevel3(1.1), "/shop.Cart/Add") {
			t.Fatal("admitted a call at fraction 0")
		}
	}
}

// TestSamplerGoesHalfOpenWhenStuck: a sampler stuck at level 3 on memory
// that does not fall hands it back, then admits a growing fraction.
func TestSamplerGoesHalfOpenWhenStuck(t *testing.T) {
	restoreGC(t)
	probe := &fakeProbe{used: 990 * MiB, capacity: 1000 * MiB}
	s := NewSampler("v1", DefaultModule("api"), WithProbe(probe), WithClock(fakeClock()), WithoutActions(ActionCollectGarbage))
	var fractions []float64
	for range 12 {
		s.SampleOnce()
		fractions = append(fractions, s.AdmitFraction())
	}
	// Released when stalled, then again after stallSamples samples half-open.
	if s.Pressure().Level != LevelCritical || fractions[len(fractions)-1] < 0.5 || s.recovery.releasesRun != 2 {
		t.Errorf("fractions %v, releases %d; want level 3 held, half-open after one release and a second", fractions, s.recovery.releasesRun)
	}
	probe.used = 1000 * MiB // climbing
	s.SampleOnce()
	if s.AdmitFraction() != 0 {
		t.Errorf("fraction %v after usage climbed, want 0", s.AdmitFraction())
	}
}
