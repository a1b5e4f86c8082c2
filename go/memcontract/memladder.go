package memcontract

import (
	"math"
	"time"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// The memory ladder: the breach ladder over used and live memory, the Go
// twin of Python's memcontract.ladder.MemoryLadder (same constants, same
// rules, the same shared vectors in tests/vectors/ladder/memory.json).
const (
	// flatTolerance: used memory moving by less than this fraction of
	// capacity between two samples is flat.
	flatTolerance = 0.01
	// plateauTolerance: used memory may climb this fraction of capacity above
	// a retained plateau before level 3 comes back.
	plateauTolerance = 0.05
	// inFlightSeconds: what calls already in flight allocate after shedding
	// starts, in seconds of the last growth.
	inFlightSeconds = 2.0
	// atLimitFraction: "at the hard limit" is within this fraction of it.
	atLimitFraction = 0.02
	// gapIntervals: a gap between samples longer than this many intervals
	// (a stopped process, VM steal) restarts the growth baseline.
	gapIntervals = 3.0
	// minGapFraction: samples closer than this fraction of the interval
	// leave the growth rate as it was.
	minGapFraction = 0.5
)

// growth is the growth of used memory, bytes/s: the raw rate over the last
// interval's actual elapsed time and an EWMA of it (alpha 0.5). A sample
// closer than half an interval to the previous one changes nothing; one
// more than three intervals after it restarts the baseline.
type growth struct {
	interval float64 // seconds
	raw      float64
	smoothed float64
	elapsed  float64 // of the last interval measured, seconds
	last     uint64
	lastAt   time.Time
}

func (g *growth) update(now time.Time, used uint64) {
	if g.lastAt.IsZero() {
		g.last, g.lastAt = used, now
		return
	}
	elapsed := now.Sub(g.lastAt).Seconds()
	if elapsed < minGapFraction*g.interval {
		return
	}
	previous := g.last
	g.last, g.lastAt = used, now
	if elapsed > gapIntervals*g.interval {
		g.raw, g.elapsed = 0, 0
		return
	}
	g.raw = math.Max(0, (float64(used)-float64(previous))/elapsed)
	g.smoothed = 0.5*g.raw + 0.5*g.smoothed
	g.elapsed = elapsed
}

// margin is how far used memory may still grow before shedding takes hold:
// the raw rate × (two intervals + the sampler's lag + one interval for
// shedding to act + the in-flight allowance).
func (g *growth) margin() float64 {
	lag := math.Max(0, g.elapsed-g.interval)
	return g.raw * (3*g.interval + lag + inFlightSeconds)
}

// memorySample is one reading as the memory ladder takes it.
type memorySample struct {
	at         time.Time
	used       uint64
	capacity   uint64
	live       uint64
	hasLive    bool   // false: live memory unknown (or implausible)
	limitBytes uint64 // the hard (cgroup) limit; 0: none
}

// memoryStep is what one sample did to the memory ladder.
type memoryStep struct {
	level          Level
	usageRatio     float64 // the heap signal weighed, and the usage peers are told
	allocRate      float64
	allocRateRatio float64
	plateau        uint64 // 0: none
	margin         float64
	atHardLimit    bool
}

// memoryLadder enters level 3 on used memory (through the breachLadder) and at
// once when used + margin reaches a hard limit; leaves it on live memory
// after used has been flat for confirm.level3 samples with live below the
// level-1 heap threshold, going straight to live's level and recording the
// retained plateau; while a plateau is recorded, the heap signal is the live
// ratio, and used climbing more than plateauTolerance above it (or reaching
// the hard limit) is level 3 again at once. Not safe for concurrent use.
type memoryLadder struct {
	ladder   *breachLadder
	growth   growth
	promised float64 // bytes/s
	liveExit bool
	recycles bool // on_stuck: recycle: the live exit waits at the budget too
	heapL1   float64
	confirm3 int

	plateau      uint64
	liveRatio    float64 // the last known, held while a plateau is
	hasLiveRatio bool
	flat         int
	usedAt3      uint64
	hasUsedAt3   bool
}

func newMemoryLadder(m *memcontractv1.ModuleContract, liveExit bool) *memoryLadder {
	return &memoryLadder{
		ladder:   newBreachLadder(m),
		growth:   growth{interval: float64(max(m.GetSampleIntervalMs(), 1)) / 1000},
		promised: m.GetAllocRateMbPerSec() * MiB,
		liveExit: liveExit,
		recycles: onStuck(m) == OnStuckRecycle,
		heapL1:   m.GetLadder().GetHeap().GetLevel1(),
		confirm3: int(max(m.GetLadder().GetConfirm().GetLevel3(), 1)),
	}
}

func (l *memoryLadder) step(s memorySample) memoryStep {
	capacity := float64(max(s.capacity, 1))
	l.growth.update(s.at, s.used)
	rate := l.growth.smoothed
	var rateRatio float64
	if l.promised > 0 {
		rateRatio = rate / l.promised
	}
	if s.hasLive {
		l.liveRatio, l.hasLiveRatio = float64(s.live)/capacity, true
	}
	margin := l.growth.margin()
	nearLimit := s.limitBytes > 0 && float64(s.used)+margin >= float64(s.limitBytes)
	hard := capacity
	if s.limitBytes > 0 {
		hard = float64(s.limitBytes)
	}
	atHardLimit := nearLimit || float64(s.used) >= (1-atLimitFraction)*hard
	// The live exit waits at a cgroup limit (any growth is level 3 again at
	// once), and at the budget under on_stuck: recycle (its case).
	holds := atHardLimit && (s.limitBytes > 0 || l.recycles)
	reentry := l.checkPlateau(s.used, capacity)
	usage := float64(s.used) / capacity
	if l.plateau > 0 && l.hasLiveRatio {
		usage = l.liveRatio
	}
	wasCritical := l.ladder.Level() == LevelCritical
	l.ladder.Observe(usage, rateRatio)
	if nearLimit || reentry {
		l.ladder.force(LevelCritical)
	}
	switch {
	case l.ladder.Level() == LevelCritical && !wasCritical:
		l.plateau = 0 // level 3 is about used memory again
		l.flat, l.usedAt3, l.hasUsedAt3 = 0, s.used, true
	case nearLimit:
		l.flat, l.usedAt3, l.hasUsedAt3 = 0, s.used, true
	case l.ladder.Level() == LevelCritical:
		if l.leaveOnLive(s, capacity, rateRatio, holds) {
			usage = float64(s.live) / capacity
		}
	default:
		l.flat, l.hasUsedAt3 = 0, false
	}
	return memoryStep{
		level: l.ladder.Level(), usageRatio: usage, allocRate: rate, allocRateRatio: rateRatio,
		plateau: l.plateau, margin: margin, atHardLimit: atHardLimit,
	}
}

// checkPlateau drops the plateau where it no longer holds and reports
// whether level 3 must come back.
func (l *memoryLadder) checkPlateau(used uint64, capacity float64) bool {
	if l.plateau == 0 {
		return false
	}
	if float64(used)/capacity < l.heapL1 {
		l.plateau = 0 // retained memory went back by itself
		return false
	}
	if float64(used) > float64(l.plateau)+plateauTolerance*capacity {
		l.plateau = 0 // the retained memory is used up: used is the truth
		return true
	}
	return false
}

// leaveOnLive counts flat samples at level 3 and leaves on live memory when
// it is low.
func (l *memoryLadder) leaveOnLive(s memorySample, capacity, rateRatio float64, holds bool) bool {
	flat := l.hasUsedAt3 && math.Abs(float64(s.used)-float64(l.usedAt3)) <= flatTolerance*capacity
	if flat {
		l.flat++
	} else {
		l.flat = 0
	}
	l.usedAt3, l.hasUsedAt3 = s.used, true
	if !l.liveExit || !s.hasLive || holds || l.flat < l.confirm3 || float64(s.live)/capacity >= l.heapL1 {
		return false
	}
	l.plateau = s.used
	l.flat, l.hasUsedAt3 = 0, false
	l.ladder.settle(float64(s.live)/capacity, rateRatio)
	return true
}
