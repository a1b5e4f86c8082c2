package memcontract

import memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"

// Ladder is the breach ladder of a module, as Python's memcontract.ladder:
// each signal (heap ratio, alloc-rate ratio) has thresholds for levels 1..3;
// a level is entered after confirm[level] consecutive samples at or above its
// threshold on one signal, and the level in force is the highest over
// signals. Stepping down is one level at a time, after recover_after
// consecutive samples with every signal below the current level's threshold.
// A Ladder is not safe for concurrent use.
type Ladder struct {
	thresholds [2][3]float64 // [signal][level-1]
	confirm    [3]int
	recover    int

	level   Level
	streaks [2][3]int // consecutive samples at or above each threshold, per signal
	below   int       // consecutive samples below the current level
}

// NewLadder returns the ladder of module m (defaults applied).
func NewLadder(m *memcontractv1.ModuleContract) *Ladder {
	l := m.GetLadder()
	h, r, c := l.GetHeap(), l.GetAllocRate(), l.GetConfirm()
	return &Ladder{
		thresholds: [2][3]float64{
			{h.GetLevel1(), h.GetLevel2(), h.GetLevel3()},
			{r.GetLevel1(), r.GetLevel2(), r.GetLevel3()},
		},
		confirm: [3]int{int(c.GetLevel1()), int(c.GetLevel2()), int(c.GetLevel3())},
		recover: int(l.GetRecoverAfter()),
	}
}

// Level returns the level in force.
func (l *Ladder) Level() Level { return l.level }

// Instant returns the highest level whose threshold a sample reaches on any
// signal, without confirmation.
func (l *Ladder) Instant(heapRatio, allocRateRatio float64) Level {
	values := [2]float64{heapRatio, allocRateRatio}
	for lvl := LevelCritical; lvl > LevelNormal; lvl-- {
		for sig, v := range values {
			if v >= l.thresholds[sig][lvl-1] {
				return lvl
			}
		}
	}
	return LevelNormal
}

// Observe feeds one sample and returns the level in force after it.
func (l *Ladder) Observe(heapRatio, allocRateRatio float64) Level {
	values := [2]float64{heapRatio, allocRateRatio}
	confirmed := LevelNormal
	for sig, v := range values {
		confirmed = max(confirmed, l.confirmed(sig, v))
	}
	switch {
	case confirmed > l.level:
		l.level, l.below = confirmed, 0
	case l.level > LevelNormal:
		above := false
		for sig, v := range values {
			above = above || v >= l.thresholds[sig][l.level-1]
		}
		if above {
			l.below = 0
		} else {
			l.below++
		}
		if l.below >= max(l.recover, 1) {
			l.level, l.below = l.level-1, 0
		}
	}
	return l.level
}

// confirmed updates one signal's streaks and returns the highest level it
// has confirmed.
func (l *Ladder) confirmed(sig int, v float64) Level {
	confirmed := LevelNormal
	for i := range 3 {
		if v >= l.thresholds[sig][i] {
			l.streaks[sig][i]++
		} else {
			l.streaks[sig][i] = 0
		}
		if l.streaks[sig][i] >= max(l.confirm[i], 1) {
			confirmed = Level(i + 1)
		}
	}
	return confirmed
}
