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
// sample usage does not climb) or recycle; when usage climbs, shed every
// non-core call again. The level and usage peers see are never touched here.
//
// Where live memory is known it decides: half-open never opens while live
// memory is at or above the level-3 heap threshold, and recycle fires only
// while used memory is at the hard limit (the cgroup limit, else the budget)
// with live memory below the level-1 threshold. Where it is unknown, used
// memory alone decides, as before.
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

	phase              recoveryPhase
	fraction           float64
	floor, last        float64
	still, releasesRun int
}

func newRecovery(m *memcontractv1.ModuleContract, recycle func(Pressure)) *recovery {
	heap := m.GetLadder().GetHeap()
	return &recovery{
		liveLow:      heap.GetLevel1(),
		liveHigh:     heap.GetLevel3(),
		recycles:     onStuck(m) == OnStuckRecycle,
		stallSamples: max(2, int(m.GetLadder().GetConfirm().GetLevel3())),
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

// update feeds one sample (atHardLimit: used memory is at the hard limit)
// and returns the fraction of non-core calls to admit, 0 to 1, and the
// effects (release, recycle) to run outside the sampler's lock.
func (r *recovery) update(p Pressure, atHardLimit bool) (float64, []func()) {
	r.effects = nil
	fraction := r.decide(p, atHardLimit)
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
		logger.Infof("memcontract: live memory held by the calls (level-3 threshold, or a hard limit): shedding every call")
		r.shed(usage)
		return 0
	}
	if climbing {
		if r.phase == phaseHalfOpen {
			logger.Infof("memcontract: usage climbing again at level 3: shedding every call")
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
	switch {
	case r.phase == phaseHalfOpen:
		r.fraction = min(1, r.fraction*2)
	case r.phase != phaseRecycling && r.still >= r.stallSamples:
		r.still = 0
		if r.phase == phaseShedding {
			r.stalled(p)
		} else {
			r.stuck(p, atHardLimit)
		}
	}
	return r.fraction
}

func (r *recovery) shed(usage float64) {
	r.phase, r.fraction = phaseShedding, 0
	r.floor, r.last, r.still = usage, usage, 0
}

func (r *recovery) stalled(p Pressure) {
	r.phase = phaseReleased
	logger.Infof("memcontract: level 3 usage stalled at %.1f%% with nothing growing: handing freed memory back", p.UsageRatio*100)
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
	live, ok := liveWeighed(p)
	return ok && (live >= r.liveHigh || atHardLimit && p.LimitBytes > 0 && live >= r.liveLow)
}

// liveWeighed is the live usage recovery weighs: infinite for a reading
// that failed the plausibility check (a named source read more live than
// used memory: take it all as held); not ok where live memory cannot be
// read on this platform.
func liveWeighed(p Pressure) (float64, bool) {
	live, ok := p.LiveRatio()
	if !ok && p.LiveSource != "" {
		return math.Inf(1), true
	}
	return live, ok
}

// retained reports whether recycling is the way out: live memory unknown
// (used alone decides), or used at the hard limit with live memory low.
func (r *recovery) retained(p Pressure, atHardLimit bool) bool {
	live, ok := liveWeighed(p)
	return !ok || (atHardLimit && live < r.liveLow)
}

func (r *recovery) stuck(p Pressure, atHardLimit bool) {
	if r.recycles && !r.dryRun && r.recycle != nil && r.retained(p, atHardLimit) {
		r.phase = phaseRecycling
		logger.Warningf("memcontract: %s stuck at level 3 (usage %.1f%%, memory retained): recycling", p.Module, p.UsageRatio*100)
		recycle := r.recycle
		r.effects = append(r.effects, func() { recycle(p) })
		return
	}
	if r.callsHoldIt(p, atHardLimit) {
		// The calls in flight hold the memory: admitting more would take it
		// over the limit. Stay shed; hand back again.
		r.handBack()
		return
	}
	if r.recycles && r.recycle == nil {
		logger.Warningf("memcontract: on_stuck is recycle but no WithRecycle hook is set: shedding half-open instead")
	}
	r.phase, r.fraction = phaseHalfOpen, firstFraction
	logger.Warningf("memcontract: level 3 stuck at %.1f%% (memory retained, not growing): admitting %.0f%% of non-core calls, more while usage does not climb",
		p.UsageRatio*100, r.fraction*100)
}

// releaseMemory hands freed memory back to the OS; counted.
func releaseMemory() {
	debug.FreeOSMemory()
	processCounts.rel.Add(1)
}
