package memcontract

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	memcontractv1 "github.com/memcontract/memcontract/examples/go/gen/memcontract/v1"
)

// Source provides the process's current memory pressure. Pressure is called
// on every RPC and must be cheap: implementations return a cached snapshot.
type Source interface {
	Pressure() Pressure
}

// StaticSource is a Source whose pressure is set by the program (tests, or
// flags that force a pressure). It is safe for concurrent use.
type StaticSource struct {
	mu sync.RWMutex
	p  Pressure
}

// NewStaticSource returns a StaticSource reporting p.
func NewStaticSource(p Pressure) *StaticSource {
	return &StaticSource{p: p}
}

// Pressure returns the pressure last set, stamped with the current time
// when it has none.
func (s *StaticSource) Pressure() Pressure {
	s.mu.RLock()
	p := s.p
	s.mu.RUnlock()
	if p.SampledAt.IsZero() {
		p.SampledAt = time.Now()
	}
	return p
}

// Set replaces the pressure reported.
func (s *StaticSource) Set(p Pressure) {
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()
}

// Ladder is the breach ladder of a module: for each signal (heap ratio,
// alloc-rate ratio) it finds the highest level whose threshold a sample
// exceeds; a level is entered after confirm[level] consecutive samples above
// it and left one level at a time after recover_after consecutive samples
// below its threshold. The level in force is the highest over signals.
// A Ladder is not safe for concurrent use.
type Ladder struct {
	heap, rate [3]float64
	confirm    [3]int
	recover    int

	level Level
	above [4]int // consecutive samples at or above each level (index 1..3)
	below int    // consecutive samples below the current level
}

// NewLadder returns the ladder of module m (defaults applied).
func NewLadder(m *memcontractv1.ModuleContract) *Ladder {
	l := m.GetLadder()
	return &Ladder{
		heap:    [3]float64{l.GetHeap().GetLevel1(), l.GetHeap().GetLevel2(), l.GetHeap().GetLevel3()},
		rate:    [3]float64{l.GetAllocRate().GetLevel1(), l.GetAllocRate().GetLevel2(), l.GetAllocRate().GetLevel3()},
		confirm: [3]int{int(l.GetConfirm().GetLevel1()), int(l.GetConfirm().GetLevel2()), int(l.GetConfirm().GetLevel3())},
		recover: int(l.GetRecoverAfter()),
	}
}

// Level returns the level in force.
func (l *Ladder) Level() Level { return l.level }

// Instant returns the highest level whose thresholds the sample exceeds,
// without confirmation.
func (l *Ladder) Instant(heapRatio, allocRateRatio float64) Level {
	lvl := LevelNormal
	for i := 2; i >= 0; i-- {
		if heapRatio >= l.heap[i] || allocRateRatio >= l.rate[i] {
			lvl = Level(i + 1)
			break
		}
	}
	return lvl
}

// Observe feeds one sample and returns the level in force after it.
func (l *Ladder) Observe(heapRatio, allocRateRatio float64) Level {
	inst := l.Instant(heapRatio, allocRateRatio)
	for lvl := LevelAlert; lvl <= LevelCritical; lvl++ {
		if inst >= lvl {
			l.above[lvl]++
		} else {
			l.above[lvl] = 0
		}
	}
	// Enter the highest confirmed level above the current one.
	for lvl := LevelCritical; lvl > l.level; lvl-- {
		if l.above[lvl] >= max(l.confirm[lvl-1], 1) {
			l.level = lvl
			l.below = 0
			return l.level
		}
	}
	if l.level > LevelNormal && inst < l.level {
		l.below++
		if l.below >= max(l.recover, 1) {
			l.level--
			l.below = 0
		}
	} else {
		l.below = 0
	}
	return l.level
}

// Sampler is a Source that samples this Go process's memory every
// sample_interval_ms against the module's budget and runs the breach ladder.
// Used memory is the resident set size from /proc/self/statm, or the Go
// runtime's mapped memory where /proc is not readable. The effective capacity
// is the smallest of the budget, the cgroup v2 limit at /sys/fs/cgroup and
// the physical memory.
type Sampler struct {
	module  *memcontractv1.ModuleContract
	version string
	ladder  *Ladder

	mu      sync.RWMutex
	p       Pressure
	last    uint64
	lastAt  time.Time
	rate    float64
	cancel  context.CancelFunc
	stopped chan struct{}
}

// NewSampler returns a Sampler for module m of a contract with the given
// version. Call Start to sample in the background, or SampleOnce.
func NewSampler(version string, m *memcontractv1.ModuleContract) *Sampler {
	s := &Sampler{module: m, version: version, ladder: NewLadder(m)}
	s.SampleOnce()
	return s
}

// Pressure returns the latest sample.
func (s *Sampler) Pressure() Pressure {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.p
}

// Start samples every sample_interval_ms until Stop is called.
func (s *Sampler) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.stopped = make(chan struct{})
	interval := time.Duration(max(s.module.GetSampleIntervalMs(), 1)) * time.Millisecond
	go func() {
		defer close(s.stopped)
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
	}()
}

// Stop stops the background sampling started by Start.
func (s *Sampler) Stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.stopped
		s.cancel = nil
	}
}

// SampleOnce takes one sample and returns it.
func (s *Sampler) SampleOnce() Pressure {
	now := time.Now()
	used := usedBytes()
	capacity := uint64(s.module.GetMaxHeapMb() * MiB)
	if lim := cgroupLimit(); lim > 0 && lim < capacity {
		capacity = lim
	}
	if phys := physicalMemory(); phys > 0 && phys < capacity {
		capacity = phys
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastAt.IsZero() {
		if dt := now.Sub(s.lastAt).Seconds(); dt > 0 {
			growth := math.Max(float64(used)-float64(s.last), 0) / dt
			s.rate = 0.5*s.rate + 0.5*growth
		}
	}
	s.last, s.lastAt = used, now
	var ratio, rateRatio float64
	if capacity > 0 {
		ratio = float64(used) / float64(capacity)
	}
	if promised := s.module.GetAllocRateMbPerSec() * MiB; promised > 0 {
		rateRatio = s.rate / promised
	}
	lvl := s.ladder.Observe(ratio, rateRatio)
	s.p = Pressure{
		UsageRatio:           ratio,
		UsedBytes:            used,
		CapacityBytes:        capacity,
		AllocRateBytesPerSec: s.rate,
		AllocRateRatio:       rateRatio,
		Level:                lvl,
		ContractVersion:      s.version,
		Module:               s.module.GetName(),
		SampledAt:            now,
	}
	return s.p
}

func usedBytes() uint64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				return pages * uint64(os.Getpagesize())
			}
		}
	}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 && s[1].Value.Kind() == metrics.KindUint64 {
		return s[0].Value.Uint64() - s[1].Value.Uint64()
	}
	return 0
}

func cgroupLimit() uint64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	v := strings.TrimSpace(string(b))
	if v == "max" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func physicalMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
