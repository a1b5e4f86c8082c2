package memcontract

import (
	"math"
	"sync"
	"time"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// Calm is free: while a process is quiet (level 0, usage and growth below
// their level-1 thresholds) its x-memory-* keys travel only when what they
// say changed: the level, quiet or not, or usage or the error ratio its ORCA
// report carries (errors over calls) by UsageStep or more (a balancer weighs
// both alike: a report told while shed calls still counted, just out of
// level 3, would otherwise hold a backend's weight down until the refresh). A
// Server sends them on a connection's first call, after a change, and at
// least every RefreshInterval per connection; a Client once per change per
// target. At level 1 and up every call carries them. A receiver reads absent
// keys as calm.
const (
	// UsageStep is the usage move (5 points of the budget) that is a change.
	UsageStep = 0.05
	// PlateauUsageStep is the step (usage and error ratio) while a retained
	// plateau is recorded: the live usage told then settles, and the calls
	// shed just before fall out of the error ratio, over the first seconds
	// after a level was left on live memory; a balancer's weight at about
	// 50 % usage moves 4 % per point of either.
	PlateauUsageStep = 0.01
	// RefreshInterval is how often a quiet Server resends its keys on a
	// connection at least.
	RefreshInterval = 30 * time.Second
	// maxTold bounds the connections a quiet Server remembers telling.
	maxTold = 10_000
)

// wireVersion is what a process's keys said when they last changed.
type wireVersion struct {
	quiet   bool
	level   Level
	usage   float64
	errors  float64 // errors over calls (a Server's; 0 for a Client)
	plateau bool    // a retained plateau is recorded: usage moves by PlateauUsageStep
}

// quietRule decides whether a pressure is quiet under a module's thresholds.
type quietRule struct {
	heap, allocRate float64 // the level-1 thresholds
	never           bool    // orca.rates: calls (rates move every sample)
}

func quietRuleOf(m *memcontractv1.ModuleContract) quietRule {
	r := quietRule{heap: 0.80, allocRate: 1.0}
	if l := m.GetLadder().GetHeap().GetLevel1(); l > 0 {
		r.heap = l
	}
	if l := m.GetLadder().GetAllocRate().GetLevel1(); l > 0 {
		r.allocRate = l
	}
	r.never = m.GetOrca().GetRates() == RatesCalls
	return r
}

func (r quietRule) version(p Pressure) wireVersion {
	quiet := !r.never && p.Level == LevelNormal && p.UsageRatio < r.heap && p.AllocRateRatio < r.allocRate
	return wireVersion{quiet: quiet, level: p.Level, usage: p.UsageRatio, plateau: p.PlateauBytes > 0}
}

// changedSince reports whether v says something told does not: quiet or
// not, the level, or usage or the error ratio by UsageStep (by
// PlateauUsageStep while a plateau is recorded; in tenths of a point, as
// x-memory-usage resolves it).
func (v wireVersion) changedSince(told wireVersion) bool {
	step := UsageStep
	if v.plateau {
		step = PlateauUsageStep
	}
	return v.quiet != told.quiet || v.level != told.level ||
		math.Round(math.Abs(v.usage-told.usage)*1000) >= step*1000 ||
		math.Round(math.Abs(v.errors-told.errors)*1000) >= step*1000
}

// teller remembers, per key (a connection or a target), what was last told
// and until when it holds.
type teller struct {
	mu   sync.Mutex
	told map[string]toldEntry
	max  int
}

type toldEntry struct {
	v     wireVersion
	until time.Time
}

// tells reports whether a call to or from key carries the keys of v now (a
// sample taken at at): always when not quiet; quiet, when key has not been
// told, v changed since, or refresh (0: never) has passed. With mark false
// the call carries them without counting as telling key.
func (t *teller) tells(key string, v wireVersion, at time.Time, refresh time.Duration, mark bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	last, seen := t.told[key]
	if v.quiet && seen && last.v.quiet && !v.changedSince(last.v) && (refresh == 0 || at.Before(last.until)) {
		return false
	}
	if mark {
		t.markLocked(key, v, at, refresh, last, seen)
	}
	return true
}

// mark records that key was told v (a sample taken at at).
func (t *teller) mark(key string, v wireVersion, at time.Time, refresh time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	last, seen := t.told[key]
	t.markLocked(key, v, at, refresh, last, seen)
}

func (t *teller) markLocked(key string, v wireVersion, at time.Time, refresh time.Duration, last toldEntry, seen bool) {
	if seen && !v.changedSince(last.v) && last.v.quiet == v.quiet {
		v = last.v // the usage at the last change is what a step is measured from
	}
	if t.told == nil {
		t.told = make(map[string]toldEntry)
	}
	if !seen && len(t.told) >= t.max {
		for k := range t.told { // one arbitrary entry: that connection hears the keys once more
			delete(t.told, k)
			break
		}
	}
	t.told[key] = toldEntry{v: v, until: at.Add(refresh)}
}
