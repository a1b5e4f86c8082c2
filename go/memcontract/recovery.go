package memcontract

import (
	"math"
	"runtime/debug"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// on_stuck values (the contract's choice of what a stuck level 3 does):
// OnStuckHalfOpen (the default) admits a growing fraction of non-core calls;
// OnStuckRecycle asks the process to drain and exit for a restart (see
// WithRecycle).
const (
	OnStuckHalfOpen = "half_open"
	OnStuckRecycle  = "recycle"
)

// Level 3's way out, the Go twin of Python's memcontract.recovery (same
// constants, same phases): while usage falls, wait; when it stalls with
// nothing growing, hand freed memory back to the OS; when it stalls again,
// shed half-open (admit firstFraction of non-core calls, doubling every
// sample usage does not climb) or recycle; while half-open and flat, hand
// memory back again, every stallSamples samples at first, then twice as long
// each time (up to maxReleaseWait samples); when usage climbs, shed every
// non-core call again. The level and usage peers see are never touched here.
//
// Where live memory is known it decides: half-open never opens while live
// memory is at or above the level-3 heap threshold, and recycle fires only
// while used memory is at the hard limit (the cgroup limit, else the budget)
// with live memory below the level-1 threshold. Live memory is weighed as
// the ladder's live usage (live plus the calm gap: what used memory would
// be if nothing were retained), on the thresholds' scale. Where it is
// unknown, used memory alone decides, as before.
//
// The releases while half-open matter more in Go than in Python: the
// runtime's live heap is measured only by a collection, so memory the
// program frees after a load reads as live until the next GC (a forced one
// comes every 2 minutes) and level 3 could not end on live memory before.
// A release (debug.FreeOSMemory) collects first.
//
// update only decides: the release and the recycle hook it asks for are
// returned as effects, which the Sampler runs outside its lock.
const (
	// recoveryTolerance: a change in usage ratio smaller than this between
	// samples is noise.
	recoveryTolerance = 0.01
	// growthRatio: smoothed growth below this fraction of the promised rate
	// counts as "about zero".
	growthRatio = 0.1
	// firstFraction of non-core calls is admitted when shedding first goes
	// half-open.
	firstFraction = 0.125
	// maxReleaseWait is the longest wait, in samples, between two releases
	// while half-open and flat.
	maxReleaseWait = 64
)

type recoveryPhase int

const (
	phaseClosed recoveryPhase = iota
	phaseShedding
	phaseReleased
	phaseHalfOpen
	phaseRecycling
)

// recovery decides, sample by sample at level 3, the fraction of non-core
// calls admitted.
type recovery struct {
	recycles     bool
	stallSamples int
	release      func()
	recycle      func(Pressure) // nil: nobody recycles the process
	dryRun       bool
	liveLow      float64 // below it (level-1 heap threshold), live memory is low
	liveHigh     float64 // at or above it (level-3 heap threshold), half-open stays shut
	effects      []func()
	step         memoryStep // the ladder's step of the sample being decided

	phase              recoveryPhase
	fraction           float64
	floor, last        float64
	still, releasesRun int
	wait               int // samples without falling before the next step
}

func newRecovery(m *memcontractv1.ModuleContract, recycle func(Pressure)) *recovery {
	heap := m.GetLadder().GetHeap()
	stall := max(2, int(m.GetLadder().GetConfirm().GetLevel3()))
	return &recovery{
		liveLow:      heap.GetLevel1(),
		liveHigh:     heap.GetLevel3(),
		recycles:     onStuck(m) == OnStuckRecycle,
		stallSamples: stall,
		wait:         stall,
		release:      releaseMemory,
		recycle:      recycle,
		dryRun:       m.GetDryRun(),
	}
}

// onStuck returns the module's on_stuck; a message built without it (not
// through DefaultModule) half-opens, Python's default.
func onStuck(m *memcontractv1.ModuleContract) string {
	if v := m.GetOnStuck(); v != "" {
		return v
	}
	return OnStuckHalfOpen
}

// update feeds one sample and the ladder's step for it (atHardLimit: used
// memory is at the hard limit; the live usage) and returns the fraction of
// non-core calls to admit, 0 to 1, and the effects (release, recycle) to run
// outside the sampler's lock.
func (r *recovery) update(p Pressure, step memoryStep) (float64, []func()) {
	r.effects, r.step = nil, step
	fraction := r.decide(p, step.atHardLimit)
	return fraction, r.effects
}

func (r *recovery) decide(p Pressure, atHardLimit bool) float64 {
	usage := p.UsageRatio
	if p.Level < LevelCritical {
		r.phase, r.fraction = phaseClosed, 0
		return 0
	}
	if r.phase == phaseClosed {
		r.shed(usage)
		return 0
	}
	climbing := usage > r.last+recoveryTolerance || p.AllocRateRatio >= growthRatio
	r.last = usage
	if r.phase == phaseHalfOpen && r.callsHoldIt(p, atHardLimit) {
		logger.Infof("live memory held by the calls (level-3 threshold, or a hard limit): shedding every call")
		r.shed(usage)
		return 0
	}
	if climbing {
		if r.phase == phaseHalfOpen {
			logger.Infof("usage climbing again at level 3: shedding every call")
		}
		if r.phase != phaseRecycling {
			r.shed(usage)
		}
		return 0
	}
	if usage < r.floor-recoveryTolerance {
		r.floor, r.still = usage, 0
	} else {
		r.still++
	}
	if r.phase == phaseHalfOpen {
		r.fraction = min(1, r.fraction*2)
	}
	if r.phase != phaseRecycling && r.still >= r.wait {
		r.still = 0
		switch r.phase {
		case phaseShedding:
			r.stalled(p)
		case phaseReleased:
			r.stuck(p, atHardLimit)
		default: // half-open and flat: hand back what the admitted calls freed, less often
			r.wait = min(2*r.wait, maxReleaseWait)
			r.handBack()
		}
	}
	return r.fraction
}

func (r *recovery) shed(usage float64) {
	r.phase, r.fraction = phaseShedding, 0
	r.floor, r.last, r.still = usage, usage, 0
	r.wait = r.stallSamples
}

func (r *recovery) stalled(p Pressure) {
	r.phase = phaseReleased
	logger.Infof("level 3 usage stalled at %.1f%% with nothing growing: handing freed memory back", p.UsageRatio*100)
	r.handBack()
}

func (r *recovery) handBack() {
	if !r.dryRun {
		r.releasesRun++
		r.effects = append(r.effects, r.release)
	}
}

// callsHoldIt reports whether live memory says the calls hold the memory, so
// admitting more would take it over the limit: live at or above the level-3
// threshold, or, at a hard (cgroup) limit, not below the level-1 threshold
// (not retained memory: there the kernel kills, where a budget only sheds).
func (r *recovery) callsHoldIt(p Pressure, atHardLimit bool) bool {
	live, ok := r.liveWeighed(p, true) // admitting more grows used memory
	return ok && (live >= r.liveHigh || atHardLimit && p.LimitBytes > 0 && live >= r.liveLow)
}

// liveWeighed is the live memory recovery weighs: with usage, the ladder's
// live usage (live plus the calm gap: what used memory would be with
// nothing retained, the scale of the thresholds), else the bare live ratio
// (what the program holds). Infinite for a reading that failed the
// plausibility check (a named source read more live than used memory: take
// it all as held); not ok where live memory cannot be read on this platform.
func (r *recovery) liveWeighed(p Pressure, usage bool) (float64, bool) {
	live, ok := p.LiveRatio()
	switch {
	case !ok && p.LiveSource != "":
		return math.Inf(1), true
	case ok && usage && r.step.hasLiveRatio:
		return r.step.liveRatio, true
	}
	return live, ok
}

// retained reports whether recycling is the way out: live memory unknown
// (used alone decides), or used at the hard limit with live memory low. The
// bare live ratio: the question is whether the program holds little of what
// is used (a restart gives the rest back), and in a small budget the calm
// gap alone can be most of it.
func (r *recovery) retained(p Pressure, atHardLimit bool) bool {
	live, ok := r.liveWeighed(p, false)
	return !ok || (atHardLimit && live < r.liveLow)
}

func (r *recovery) stuck(p Pressure, atHardLimit bool) {
	if r.recycles && !r.dryRun && r.recycle != nil && r.retained(p, atHardLimit) {
		r.phase = phaseRecycling
		logger.Warningf("%s stuck at level 3 (usage %.1f%%, memory retained): recycling", p.Module, p.UsageRatio*100)
		recycle := r.recycle
		r.effects = append(r.effects, func() { recycle(p) })
		return
	}
	if r.callsHoldIt(p, atHardLimit) {
		// The calls in flight hold the memory: admitting more would take it
		// over the limit. Stay shed; hand back again later (less often), as
		// half-open does.
		r.wait = min(2*r.wait, maxReleaseWait)
		r.handBack()
		return
	}
	if r.recycles && r.recycle == nil {
		logger.Warningf("on_stuck is recycle but no WithRecycle hook is set: shedding half-open instead")
	}
	r.phase, r.fraction = phaseHalfOpen, firstFraction
	logger.Warningf("level 3 stuck at %.1f%% (memory retained, not growing): admitting %.0f%% of non-core calls, more while usage does not climb",
		p.UsageRatio*100, r.fraction*100)
}

// releaseMemory hands freed memory back to the OS; counted.
func releaseMemory() {
	debug.FreeOSMemory()
	processCounts.rel.Add(1)
}
