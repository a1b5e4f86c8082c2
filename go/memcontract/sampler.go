package memcontract

import (
	"context"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// Sampler is the Go guard: a Source that reads a Probe every
// sample_interval_ms against the module's budget, runs the breach ladder and
// takes Go's own actions at the ladder's levels (see Action). Pressure
// returns the cached snapshot (no system call).
type Sampler struct {
	module   *memcontractv1.ModuleContract
	version  string
	probe    Probe
	closer   io.Closer // the probe the sampler made, closed by Stop
	now      func() time.Time
	ladder   *Ladder
	actions  *actionRunner
	recovery *recovery
	hooks    []func(old, new Level, p Pressure)
	levels   levelClock

	mu    sync.RWMutex
	p     Pressure
	admit float64
	rate  rateEstimator

	failures atomic.Int64

	runMu   sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{}
}

// SamplerOption configures NewSampler.
type SamplerOption func(*samplerOptions)

type samplerOptions struct {
	probe    Probe
	closer   io.Closer // the probe the sampler made, closed by Stop
	now      func() time.Time
	disabled map[string]bool
	hooks    []func(old, new Level, p Pressure)
	recycle  func(Pressure)
}

// WithProbe reads memory from p instead of a SystemProbe.
func WithProbe(p Probe) SamplerOption {
	return func(o *samplerOptions) { o.probe = p }
}

// WithClock sets the clock of the growth-rate estimate (tests step one).
func WithClock(now func() time.Time) SamplerOption {
	return func(o *samplerOptions) { o.now = now }
}

// WithoutActions turns the named actions off (ActionSoftMemoryLimit,
// ActionTightenGC, ActionCollectGarbage).
func WithoutActions(names ...string) SamplerOption {
	return func(o *samplerOptions) {
		for _, n := range names {
			o.disabled[n] = true
		}
	}
}

// WithTransitionHook calls f on every level transition, on the sampling
// goroutine; a panic in f is logged, never raised.
func WithTransitionHook(f func(old, new Level, p Pressure)) SamplerOption {
	return func(o *samplerOptions) { o.hooks = append(o.hooks, f) }
}

// WithRecycle sets what a stuck level 3 does under on_stuck: recycle (the
// Go twin of Python's guard.on_recycle): f is called once per episode, on
// the sampling goroutine, and should start draining the server (health
// NOT_SERVING, GracefulStop) and exit for a supervisor to restart the
// process. Without it, on_stuck: recycle sheds half-open.
func WithRecycle(f func(p Pressure)) SamplerOption {
	return func(o *samplerOptions) { o.recycle = f }
}

// NewSampler returns a Sampler for module m of a contract with the given
// version, after one first sample. Call Start to sample in the background
// (Stop to end it and release the actions), or SampleOnce.
func NewSampler(version string, m *memcontractv1.ModuleContract, opts ...SamplerOption) *Sampler {
	o := samplerOptions{now: time.Now, disabled: map[string]bool{}}
	for _, opt := range opts {
		opt(&o)
	}
	var closer io.Closer
	if o.probe == nil {
		sp := NewSystemProbe()
		o.probe, closer = sp, sp
	}
	s := &Sampler{closer: closer,
		module: m, version: version, probe: o.probe, now: o.now, ladder: NewLadder(m), hooks: o.hooks,
		actions: newActionRunner(defaultActions(m, o.disabled), m.GetDryRun()),
	}
	var recycle func(Pressure) bool
	if o.recycle != nil {
		recycle = func(p Pressure) bool {
			processCounts.recycles.Add(1)
			runHook("recycle hook", func() { o.recycle(p) })
			return true
		}
	}
	s.recovery = newRecovery(m, recycle)
	s.p = Pressure{ContractVersion: version, Module: m.GetName(), CapacityBytes: s.budget()}
	s.levels.enter(LevelNormal, s.now())
	s.SampleOnce()
	return s
}

// Pressure returns the latest sample.
func (s *Sampler) Pressure() Pressure {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.p
}

// AdmitFraction returns the fraction of non-core calls a Server admits at
// level 3: 0 while shedding, more once level 3 is stuck on memory retained
// but not used (half-open, see on_stuck). The level itself is unchanged.
func (s *Sampler) AdmitFraction() float64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.admit
}

// ProbeFailures returns the number of samples whose probe read failed.
func (s *Sampler) ProbeFailures() int64 { return s.failures.Load() }

// ActionCount returns how many times the named action was engaged (counted
// in dry run too, where nothing is done).
func (s *Sampler) ActionCount(name string) int64 { return s.actions.count(name) }

// Start samples every sample_interval_ms until Stop. Starting a running
// sampler does nothing.
func (s *Sampler) Start() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.stopped = cancel, make(chan struct{})
	interval := time.Duration(max(s.module.GetSampleIntervalMs(), 1)) * time.Millisecond
	go func(stopped chan struct{}) {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.SampleOnce()
			}
		}
	}(s.stopped)
}

// Stop stops the sampling started by Start, releases every engaged action
// (the GC settings are restored) and closes the probe the sampler made. It
// is safe to call more than once; SampleOnce still works afterwards.
func (s *Sampler) Stop() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.cancel != nil {
		s.cancel()
		<-s.stopped
		s.cancel = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions.releaseAll()
	if s.closer != nil {
		_ = s.closer.Close()
	}
}

func (s *Sampler) budget() uint64 {
	return uint64(s.module.GetMaxHeapMb() * MiB)
}

// SampleOnce takes one sample, runs the ladder and the actions, and returns
// the pressure in force. A failed read is counted and holds the level.
func (s *Sampler) SampleOnce() Pressure {
	r, err := s.probe.Read(s.budget())
	s.mu.Lock()
	if err != nil {
		s.failures.Add(1)
		processCounts.failed("read")
		logger.Warningf("memcontract: memory read failed (level held): %v", err)
		p := s.p
		s.mu.Unlock()
		return p
	}
	for _, source := range r.FailedSources {
		processCounts.failed(source)
	}
	now := s.now()
	rate := s.rate.update(now, r.UsedBytes)
	var ratio, rateRatio float64
	if r.CapacityBytes > 0 {
		ratio = float64(r.UsedBytes) / float64(r.CapacityBytes)
	}
	if promised := s.module.GetAllocRateMbPerSec() * MiB; promised > 0 {
		rateRatio = rate / promised
	}
	old := s.p.Level
	lvl := s.ladder.Observe(ratio, rateRatio)
	s.p = Pressure{
		UsageRatio: ratio, UsedBytes: r.UsedBytes, CapacityBytes: r.CapacityBytes,
		AllocRateBytesPerSec: rate, AllocRateRatio: rateRatio, Level: lvl,
		ContractVersion: s.version, Module: s.module.GetName(), SampledAt: now,
		LimitBytes: r.LimitBytes,
	}
	if lvl != old {
		s.levels.enter(lvl, now)
	}
	p := s.p
	s.actions.update(p)
	s.admit = s.recovery.update(p)
	s.mu.Unlock()
	if lvl != old {
		for _, h := range s.hooks {
			runHook("transition hook", func() { h(old, lvl, p) })
		}
	}
	return p
}

// runHook runs a user hook; a panic is logged, never raised.
func runHook(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			logger.Errorf("memcontract: %s panicked: %v", what, r)
		}
	}()
	f()
}

// rateEstimator is the smoothed growth rate of used memory (bytes/s, never
// negative): an EWMA of deltas with alpha 0.5, as Python's RateEstimator.
type rateEstimator struct {
	rate   float64
	last   uint64
	lastAt time.Time
}

func (e *rateEstimator) update(now time.Time, used uint64) float64 {
	if !e.lastAt.IsZero() && now.After(e.lastAt) {
		instant := math.Max(0, (float64(used)-float64(e.last))/now.Sub(e.lastAt).Seconds())
		e.rate = 0.5*instant + 0.5*e.rate
	}
	if e.lastAt.IsZero() || now.After(e.lastAt) {
		e.last, e.lastAt = used, now
	}
	return e.rate
}
