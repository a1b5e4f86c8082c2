package memcontract

import (
	"math"
	"runtime/debug"
	"sync"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// Names of the Sampler's actions (for WithoutActions and ActionCount).
const (
	// ActionSoftMemoryLimit keeps the Go runtime's soft memory limit
	// (debug.SetMemoryLimit) at gc_trigger_ratio × the effective capacity,
	// so the collector works harder as the heap nears the budget instead of
	// letting GOGC headroom carry it over; never below 1.25 × live memory
	// (a limit under the live heap only burns CPU). The limit in force
	// before is restored on Stop.
	ActionSoftMemoryLimit = "soft_memory_limit"
	// ActionTightenGC lowers GOGC to 50 (debug.SetGCPercent, as the origin
	// article does) at level 3 and restores it below level 3.
	ActionTightenGC = "tighten_gc"
	// ActionCollectGarbage runs a collection and returns freed memory to the
	// OS (debug.FreeOSMemory) on entering level 3, so level 3 can end.
	ActionCollectGarbage = "collect_garbage"
)

// tightGCPercent is the GOGC the origin article tightens to.
const tightGCPercent = 50

// action is engaged while wanted; update runs on every sample while engaged.
type action interface {
	name() string
	wanted(p Pressure) bool
	engage(p Pressure)
	update(p Pressure)
	release()
}

func defaultActions(m *memcontractv1.ModuleContract, disabled map[string]bool) []action {
	all := []action{
		&softMemoryLimit{ratio: m.GetGcTriggerRatio()},
		&tightenGC{},
		&collectGarbage{},
	}
	var out []action
	for _, a := range all {
		if !disabled[a.name()] {
			out = append(out, a)
		}
	}
	return out
}

type softMemoryLimit struct {
	ratio float64
	saved int64
	set   int64
}

func (a *softMemoryLimit) name() string { return ActionSoftMemoryLimit }

func (a *softMemoryLimit) wanted(p Pressure) bool { return a.ratio > 0 && p.CapacityBytes > 0 }

func (a *softMemoryLimit) engage(p Pressure) {
	a.saved = debug.SetMemoryLimit(-1) // -1 reads without changing
	a.set = 0
	a.update(p)
}

// liveHeadroom is the least soft limit over live memory: a limit at or under
// the live heap makes the collector run back to back (up to the runtime's
// 50 % CPU cap) without freeing anything, even in an idle process.
const liveHeadroom = 1.25

// update follows the capacity (a cgroup limit can change at run time) and
// stays liveHeadroom above live memory.
func (a *softMemoryLimit) update(p Pressure) {
	target := a.ratio * float64(p.CapacityBytes)
	if p.HasLive {
		target = max(target, liveHeadroom*float64(p.LiveBytes))
	}
	limit := int64(math.Min(target, math.MaxInt64/2))
	if limit != a.set {
		debug.SetMemoryLimit(limit)
		a.set = limit
	}
}

func (a *softMemoryLimit) release() { debug.SetMemoryLimit(a.saved) }

type tightenGC struct {
	saved int
}

func (a *tightenGC) name() string { return ActionTightenGC }

func (a *tightenGC) wanted(p Pressure) bool { return p.Level >= LevelCritical }

func (a *tightenGC) engage(Pressure) {
	a.saved = debug.SetGCPercent(tightGCPercent)
	// GOGC=off (or already tighter) was chosen on purpose: keep it.
	if a.saved < 0 || a.saved < tightGCPercent {
		debug.SetGCPercent(a.saved)
	}
}

func (a *tightenGC) update(Pressure) {}

func (a *tightenGC) release() { debug.SetGCPercent(a.saved) }

type collectGarbage struct{}

func (collectGarbage) name() string { return ActionCollectGarbage }

func (collectGarbage) wanted(p Pressure) bool { return p.Level >= LevelCritical }

// engage collects and returns freed memory to the OS: without it the
// runtime keeps freed pages until its periodic scavenging, and a process
// stays at level 3 on resident memory it no longer uses.
func (collectGarbage) engage(Pressure) { debug.FreeOSMemory() }

func (collectGarbage) update(Pressure) {}

func (collectGarbage) release() {}

// actionRunner engages and releases actions on changes only; in dry run it
// only counts what it would do. A panicking action is logged and counted.
type actionRunner struct {
	actions []action
	dryRun  bool
	engaged map[string]bool

	mu      sync.Mutex
	engages map[string]int64
}

func newActionRunner(actions []action, dryRun bool) *actionRunner {
	return &actionRunner{actions: actions, dryRun: dryRun, engaged: map[string]bool{}, engages: map[string]int64{}}
}

func (r *actionRunner) update(p Pressure) {
	for _, a := range r.actions {
		wanted, engaged := a.wanted(p), r.engaged[a.name()]
		switch {
		case wanted && !engaged:
			r.engaged[a.name()] = true
			r.mu.Lock()
			r.engages[a.name()]++
			r.mu.Unlock()
			processCounts.action(a.name(), "engage")
			if !r.dryRun {
				runHook("action "+a.name()+".engage", func() { a.engage(p) })
			}
		case engaged && !wanted:
			r.release(a)
		case engaged && !r.dryRun:
			runHook("action "+a.name()+".update", func() { a.update(p) })
		}
	}
}

func (r *actionRunner) release(a action) {
	delete(r.engaged, a.name())
	processCounts.action(a.name(), "release")
	if !r.dryRun {
		runHook("action "+a.name()+".release", a.release)
	}
}

func (r *actionRunner) releaseAll() {
	for _, a := range r.actions {
		if r.engaged[a.name()] {
			r.release(a)
		}
	}
}

func (r *actionRunner) count(name string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.engages[name]
}
