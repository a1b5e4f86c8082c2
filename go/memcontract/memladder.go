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
	// liveRatio is the live usage (live plus the calm gap, over capacity:
	// what used memory would be if nothing were retained) where this sample
	// read live memory (hasLiveRatio). Recovery weighs it.
	liveRatio    float64
	hasLiveRatio bool
}

// memoryLadder enters level 3 on used memory (through the breachLadder) and at
// once when used + margin reaches a hard limit (held while used stays at the
// level-2 heap threshold of that limit). At level 1 and up, after used
// has been flat for confirm.level3 samples with the live usage below the
// level-1 heap threshold, it goes straight to the live usage's level and
// records the retained plateau (memory a spike left behind latches any
// level); while a plateau is recorded, the heap signal is the live usage,
// used climbing more than plateauTolerance above it is at once the level used
// indicates, and reaching the hard limit level 3. Not safe for concurrent use.
//
// The live usage is live memory plus the calm gap, the gap between used and
// live at the last calm, steady sample (level 0, no plateau, used flat since
// the sample before; until there is one, at the last calm sample): what the
// process holds outside its heap (binary, stacks, runtime). A process just
// out of level 3 then tells a usage its calm siblings' used memory can be
// weighed against; before any calm sample the gap is 0.
type memoryLadder struct {
	ladder   *breachLadder
	growth   growth
	promised float64 // bytes/s
	liveExit bool
	recycles bool // on_stuck: recycle: the live exit waits at the budget too
	heapL1   float64
	heapL2   float64
	confirm3 int

	plateau       uint64
	liveRatio     float64 // the last known live usage, held while a plateau is
	hasLiveRatio  bool
	calmGap       uint64 // used - live at the last calm, steady sample
	steadyGap     bool   // calmGap was taken at a steady sample
	lastUsed      uint64
	hasLastUsed   bool
	flat          int
	usedBefore    uint64
	hasUsedBefore bool
	limitEpisode  bool // level 3 forced by the projection to the hard limit
}

func newMemoryLadder(m *memcontractv1.ModuleContract, liveExit bool) *memoryLadder {
	return &memoryLadder{
		ladder:   newBreachLadder(m),
		growth:   growth{interval: float64(max(m.GetSampleIntervalMs(), 1)) / 1000},
		promised: m.GetAllocRateMbPerSec() * MiB,
		liveExit: liveExit,
		recycles: onStuck(m) == OnStuckRecycle,
		heapL1:   m.GetLadder().GetHeap().GetLevel1(),
		heapL2:   m.GetLadder().GetHeap().GetLevel2(),
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
		l.liveRatio, l.hasLiveRatio = float64(s.live+l.calmGap)/capacity, true
	}
	margin := l.growth.margin()
	// Once the projection forced level 3, growth stopping (shedding works) is
	// no reason to admit again this close to the limit: one burst of admitted
	// calls would cross it before the next sample. Held while used is at the
	// level-2 threshold of the limit.
	nearLimit := s.limitBytes > 0 && (float64(s.used)+margin >= float64(s.limitBytes) ||
		l.limitEpisode && float64(s.used) >= l.heapL2*float64(s.limitBytes))
	l.limitEpisode = nearLimit
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
	switch {
	case nearLimit:
		l.ladder.force(LevelCritical)
	case reentry: // the level used memory indicates, at once
		l.ladder.settle(usage, rateRatio)
	}
	switch {
	case l.ladder.Level() == LevelCritical && !wasCritical:
		l.plateau = 0 // level 3 is about used memory again
		l.flat, l.usedBefore, l.hasUsedBefore = 0, s.used, true
	case nearLimit:
		l.flat, l.usedBefore, l.hasUsedBefore = 0, s.used, true
	case l.ladder.Level() != LevelNormal && l.plateau == 0:
		if l.leaveOnLive(s, capacity, rateRatio, holds) {
			usage = l.liveRatio
		}
	default:
		l.flat, l.hasUsedBefore = 0, false
	}
	l.noteSample(s, capacity)
	return memoryStep{
		level: l.ladder.Level(), usageRatio: usage, allocRate: rate, allocRateRatio: rateRatio,
		plateau: l.plateau, margin: margin, atHardLimit: atHardLimit,
		liveRatio: l.liveRatio, hasLiveRatio: s.hasLive,
	}
}

// noteSample runs after each sample: at a calm one (level 0, no plateau) the
// gap between used and live becomes the calm gap if used is steady (flat
// since the sample before: not warming up, not a load starting), or if no
// steady one was seen yet.
func (l *memoryLadder) noteSample(s memorySample, capacity float64) {
	last, hadLast := l.lastUsed, l.hasLastUsed
	l.lastUsed, l.hasLastUsed = s.used, true
	if !s.hasLive || l.plateau != 0 || l.ladder.Level() != LevelNormal {
		return
	}
	steady := hadLast && math.Abs(float64(s.used)-float64(last)) <= flatTolerance*capacity
	if steady || !l.steadyGap {
		l.calmGap, l.steadyGap = s.used-min(s.live, s.used), steady
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

// leaveOnLive counts flat samples at level 1 and up and leaves when the live
// usage is low.
func (l *memoryLadder) leaveOnLive(s memorySample, capacity, rateRatio float64, holds bool) bool {
	flat := l.hasUsedBefore && math.Abs(float64(s.used)-float64(l.usedBefore)) <= flatTolerance*capacity
	if flat {
		l.flat++
	} else {
		l.flat = 0
	}
	l.usedBefore, l.hasUsedBefore = s.used, true
	// Used memory below the level-1 threshold is not retained memory: the
	// ladder steps down as usual.
	if !l.liveExit || !s.hasLive || holds || l.flat < l.confirm3 || l.liveRatio >= l.heapL1 ||
		float64(s.used)/capacity < l.heapL1 {
		return false
	}
	l.plateau = s.used
	l.flat, l.hasUsedBefore = 0, false
	l.ladder.settle(l.liveRatio, rateRatio)
	return true
}
