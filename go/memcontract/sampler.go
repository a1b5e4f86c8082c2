package memcontract

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// Sampler is the Go guard: a Source that reads a Probe every
// sample_interval_ms against the module's budget, runs the memory ladder
// (used and live memory, see memladder.go) and takes Go's own actions at the
// ladder's levels (see Action). Pressure returns the snapshot published with
// an atomic pointer (no lock, no system call). Actions, recovery effects and
// hooks run outside the sampler's lock; the recycle hook runs on a goroutine
// of its own, so it may block or stop the server.
type Sampler struct {
	module  *memcontractv1.ModuleContract
	version string
	probe   Probe
	closer  io.Closer // the probe the sampler made, closed by Stop
	now     func() time.Time
	actions *actionRunner
	hooks   []func(old, new Level, p Pressure)
	levels  levelClock // time at each level (TimeAtLevel)

	snapshot atomic.Pointer[samplerSnapshot]

	mu       sync.Mutex // the sampling state below; never held while anything runs
	ladder   *memoryLadder
	recovery *recovery

	actMu sync.Mutex // serializes the actions' effects (one sample's at a time)

	failures atomic.Int64
	inHook   atomic.Int32 // transition hooks running now

	runMu   sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{}
}

// samplerSnapshot is what calls read: the pressure and the admitted fraction.
type samplerSnapshot struct {
	p     Pressure
	admit float64
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
	noLive   bool
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
// Go twin of Python's guard.on_recycle): f is called once per episode, on a
// goroutine of its own (it may block, call GracefulStop or Stop), and
// should start draining the server (health NOT_SERVING, GracefulStop) and
// exit for a supervisor to restart the process. Where live memory is known
// it fires only while used memory is at the hard limit with live memory
// low. Without it, on_stuck: recycle sheds half-open.
func WithRecycle(f func(p Pressure)) SamplerOption {
	return func(o *samplerOptions) { o.recycle = f }
}

// WithoutLiveExit leaves level 3 on used memory only, never on live memory
// (for comparisons, as Python's disable={"live_exit"}).
func WithoutLiveExit() SamplerOption {
	return func(o *samplerOptions) { o.noLive = true }
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
		module: m, version: version, probe: o.probe, now: o.now, hooks: o.hooks,
		ladder:  newMemoryLadder(m, !o.noLive),
		actions: newActionRunner(defaultActions(m, o.disabled), m.GetDryRun()),
	}
	var recycle func(Pressure)
	if o.recycle != nil {
		recycle = func(p Pressure) {
			processCounts.recycles.Add(1)
			go runHook("recycle hook", func() { o.recycle(p) })
		}
	}
	s.recovery = newRecovery(m, recycle)
	s.snapshot.Store(&samplerSnapshot{p: Pressure{ContractVersion: version, Module: m.GetName(), CapacityBytes: s.budget()}})
	s.levels.enter(LevelNormal, s.now())
	s.SampleOnce()
	return s
}

// Pressure returns the latest sample.
func (s *Sampler) Pressure() Pressure { return s.snapshot.Load().p }

// AdmitFraction returns the fraction of non-core calls a Server admits at
// level 3: 0 while shedding, more once level 3 is stuck on memory retained
// but not used (half-open, see on_stuck). The level itself is unchanged.
func (s *Sampler) AdmitFraction() float64 { return s.snapshot.Load().admit }

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
// is safe to call more than once, and from a hook; SampleOnce still works
// afterwards.
func (s *Sampler) Stop() {
	s.runMu.Lock()
	cancel, stopped := s.cancel, s.stopped
	s.cancel = nil
	s.runMu.Unlock()
	if cancel != nil {
		cancel()
		if !s.onSamplingGoroutine() {
			<-stopped
		}
	}
	s.actMu.Lock()
	defer s.actMu.Unlock()
	s.actions.releaseAll()
	if s.closer != nil {
		_ = s.closer.Close()
	}
}

func (s *Sampler) budget() uint64 {
	return uint64(s.module.GetMaxHeapMb() * MiB)
}

// SampleOnce takes one sample, runs the ladder, then (outside the lock) the
// actions, the recovery's effects and the hooks, and returns the pressure in
// force. A failed read is counted and holds the level.
func (s *Sampler) SampleOnce() Pressure {
	r, err := s.probe.Read(s.budget())
	if err != nil {
		s.failures.Add(1)
		processCounts.failed("read")
		logger.Warningf("memory read failed (level held): %v", err)
		return s.Pressure()
	}
	for _, source := range r.FailedSources {
		processCounts.failed(source)
	}
	s.mu.Lock()
	old := s.Pressure().Level
	p, step := s.evaluate(r)
	admit, effects := s.recovery.update(p, step)
	s.snapshot.Store(&samplerSnapshot{p: p, admit: admit})
	if p.Level != old {
		s.levels.enter(p.Level, p.SampledAt)
	}
	s.mu.Unlock()

	s.actMu.Lock()
	s.actions.update(p)
	s.actMu.Unlock()
	for _, effect := range effects {
		runHook("recovery", effect)
	}
	if p.Level != old {
		logTransition(old, p)
		for _, h := range s.hooks {
			s.inHook.Add(1)
			runHook("transition hook", func() { h(old, p.Level, p) })
			s.inHook.Add(-1)
		}
	}
	return p
}

// logTransition logs a level change as the Python guard does: a step up at
// Warning (what an operator must see), a step down at Info. grpc-go's logger
// prints them where GRPC_GO_LOG_SEVERITY_LEVEL (or grpclog.SetLoggerV2) says.
func logTransition(old Level, p Pressure) {
	if p.Level > old {
		logger.Warningf("%s entered level %d (%s): usage %s of %d MiB, growth %.1f MiB/s",
			p.Module, int(p.Level), p.Level, formatUsage(p.UsageRatio), p.CapacityBytes>>20, p.AllocRateBytesPerSec/(1<<20))
		return
	}
	logger.Infof("%s stepped down to level %d (%s)", p.Module, int(p.Level), p.Level)
}

// evaluate runs the memory ladder over a reading (called with s.mu held).
func (s *Sampler) evaluate(r Reading) (Pressure, memoryStep) {
	now := s.now()
	hasLive := r.HasLive && r.LiveBytes <= r.UsedBytes // more live than used: implausible
	step := s.ladder.step(memorySample{
		at: now, used: r.UsedBytes, capacity: r.CapacityBytes,
		live: r.LiveBytes, hasLive: hasLive, limitBytes: r.LimitBytes,
	})
	p := Pressure{
		UsageRatio: step.usageRatio, UsedBytes: r.UsedBytes, CapacityBytes: r.CapacityBytes,
		AllocRateBytesPerSec: step.allocRate, AllocRateRatio: step.allocRateRatio, Level: step.level,
		ContractVersion: s.version, Module: s.module.GetName(), SampledAt: now,
		PlateauBytes: step.plateau, LimitBytes: r.LimitBytes,
	}
	if r.HasLive { // the source is named even when its reading failed the check
		p.LiveSource = r.LiveSource
	}
	if hasLive {
		p.LiveBytes, p.HasLive = r.LiveBytes, true
	}
	return p, step
}

// onSamplingGoroutine reports whether a hook is running on the sampling
// goroutine (then Stop, called from it, must not wait for that goroutine).
func (s *Sampler) onSamplingGoroutine() bool { return s.inHook.Load() > 0 }

// runHook runs a user hook; a panic is logged, never raised.
func runHook(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			logger.Errorf("%s panicked: %v", what, r)
		}
	}()
	f()
}
