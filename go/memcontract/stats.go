package memcontract

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// ByClass holds a count per method class: core methods (never shed by this
// package; a gateway may refuse one when no upstream serves) and the others.
type ByClass struct {
	Core, NonCore int64
}

// Counters is what memcontract counted in this process since it started:
// the counts behind the memcontract_*_total metrics (the prommetrics
// package exports them, with the same names as the Python library).
type Counters struct {
	// Shed counts calls shed with codes.ResourceExhausted at level 3.
	Shed ByClass
	// WouldShed counts calls a dry-run contract would have shed.
	WouldShed ByClass
	// FastFailed counts calls a Client failed locally because the target
	// reports level 3.
	FastFailed ByClass
	// HalfOpenAdmitted counts non-core calls admitted at level 3 while
	// shedding half-open.
	HalfOpenAdmitted int64
	// Untrusted counts calls whose peer pressure was ignored as untrusted.
	Untrusted int64
	// Recycles counts the times a stuck level 3 asked the process to recycle.
	Recycles int64
	// Releases counts the memory releases (debug.FreeOSMemory) at level 3.
	Releases int64
	// ProbeFailures counts failed memory reads by source: "read" (the whole
	// reading), or a source named in Reading.FailedSources ("cgroup").
	ProbeFailures map[string]int64
	// Actions counts the Sampler's actions engaged and released, by
	// "name.engage" and "name.release" (in dry run too, where nothing is done).
	Actions map[string]int64
}

// ReadCounters returns a copy of this process's counters (any goroutine).
func ReadCounters() Counters {
	return processCounts.read()
}

// CountShed counts a call refused with codes.ResourceExhausted outside a
// Server (a proxy that finds no upstream able to take it, say) in
// Counters.Shed; core says whether the call's method is core.
func CountShed(core bool) {
	if core {
		processCounts.shed[classCore].Add(1)
	} else {
		processCounts.shed[classNonCore].Add(1)
	}
}

// processCounts holds the process-wide counters: one atomic add per event,
// off the per-call path except for the shed and fail-fast calls themselves.
var processCounts counters

type counters struct {
	shed, wouldShed, fastFailed        [2]atomic.Int64 // by class: classCore, classNonCore
	halfOpen, untrusted, recycles, rel atomic.Int64

	mu      sync.Mutex
	probe   map[string]int64
	actions map[string]int64
}

const (
	classCore = iota
	classNonCore
)

func (c *counters) failed(source string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.probe == nil {
		c.probe = map[string]int64{}
	}
	c.probe[source]++
}

func (c *counters) action(name, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.actions == nil {
		c.actions = map[string]int64{}
	}
	c.actions[name+"."+what]++
}

func (c *counters) read() Counters {
	byClass := func(a *[2]atomic.Int64) ByClass {
		return ByClass{Core: a[classCore].Load(), NonCore: a[classNonCore].Load()}
	}
	out := Counters{
		Shed: byClass(&c.shed), WouldShed: byClass(&c.wouldShed), FastFailed: byClass(&c.fastFailed),
		HalfOpenAdmitted: c.halfOpen.Load(), Untrusted: c.untrusted.Load(),
		Recycles: c.recycles.Load(), Releases: c.rel.Load(),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out.ProbeFailures, out.Actions = maps.Clone(c.probe), maps.Clone(c.actions)
	if out.ProbeFailures == nil {
		out.ProbeFailures = map[string]int64{}
	}
	if out.Actions == nil {
		out.Actions = map[string]int64{}
	}
	return out
}

// levelClock is the time a Sampler spent at each level.
type levelClock struct {
	mu    sync.Mutex
	level Level
	since time.Time
	spent [4]time.Duration
}

func (c *levelClock) enter(level Level, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.since.IsZero() && now.After(c.since) {
		c.spent[c.level] += now.Sub(c.since)
	}
	c.level, c.since = level, now
}

func (c *levelClock) read(now time.Time) [4]time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	spent := c.spent
	if !c.since.IsZero() && now.After(c.since) {
		spent[c.level] += now.Sub(c.since)
	}
	return spent
}

// TimeAtLevel returns the time the sampler has spent at each level (index
// 0..3) since it was made, by its clock (WithClock), the current stretch
// included.
func (s *Sampler) TimeAtLevel() [4]time.Duration {
	return s.levels.read(s.now())
}
