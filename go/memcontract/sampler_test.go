package memcontract

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/grpclog"
)

const (
	gib = 1 << 30
)

// cgroupVectors are the fixture cgroup trees of the Python probe tests
// (tests/vectors/cgroups/trees.json, written from tests/test_probe.py).
type cgroupVectors struct {
	Limit map[string]struct {
		Files     map[string]string `json:"files"`
		Version   int               `json:"version"`
		Limit     *uint64           `json:"limit"`
		Directory *string           `json:"directory"`
	} `json:"limit"`
	WorkingSet map[string]struct {
		Files map[string]string `json:"files"`
		Limit uint64            `json:"limit"`
		Used  uint64            `json:"used"`
	} `json:"working_set"`
	Failing map[string]struct {
		Files map[string]string `json:"files"`
		Limit *uint64           `json:"limit"`
	} `json:"failing"`
}

func readCgroupVectors(t *testing.T) cgroupVectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, "cgroups", "trees.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v cgroupVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Limit) < 10 || len(v.WorkingSet) < 4 || len(v.Failing) < 4 {
		t.Fatalf("too few cgroup trees: %d, %d, %d", len(v.Limit), len(v.WorkingSet), len(v.Failing))
	}
	return v
}

// buildTree writes a fixture tree under a temporary root and returns it.
func buildTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func expectedCapacity(budget uint64, limit *uint64) uint64 {
	c := min(budget, physicalMemory())
	if limit != nil {
		c = min(c, *limit)
	}
	return c
}

func TestCgroupLimitOfSharedTrees(t *testing.T) {
	for name, tc := range readCgroupVectors(t).Limit {
		t.Run(name, func(t *testing.T) {
			root := buildTree(t, tc.Files)
			paths, err := resolveCgroup(root)
			if err != nil || paths == nil || paths.version != tc.Version {
				t.Fatalf("resolveCgroup() = %+v, %v; want version %d", paths, err, tc.Version)
			}
			got := paths.readLimit()
			if len(got.errs) > 0 {
				t.Errorf("readLimit() errors %v", got.errs)
			}
			if tc.Limit == nil {
				if got.found {
					t.Errorf("readLimit() = %d, want no limit", got.bytes)
				}
			} else if !got.found || got.bytes != *tc.Limit || got.directory != filepath.Join(root, *tc.Directory) {
				t.Errorf("readLimit() = %d in %s, want %d in %s", got.bytes, got.directory, *tc.Limit, *tc.Directory)
			}
			r, err := NewSystemProbe(WithFSRoot(root)).Read(4 * gib)
			if err != nil || r.CapacityBytes != expectedCapacity(4*gib, tc.Limit) || len(r.FailedSources) > 0 {
				t.Errorf("Read(4 GiB) = %+v, %v; want capacity %d", r, err, expectedCapacity(4*gib, tc.Limit))
			}
		})
	}
}

func TestWorkingSetOfSharedTrees(t *testing.T) {
	for name, tc := range readCgroupVectors(t).WorkingSet {
		t.Run(name, func(t *testing.T) {
			p := NewSystemProbe(WithFSRoot(buildTree(t, tc.Files)))
			r, err := p.Read(gib)
			if err != nil || r.UsedBytes != tc.Used || r.CapacityBytes != tc.Limit || len(r.FailedSources) > 0 {
				t.Errorf("Read(1 GiB) = %+v, %v; want used %d of %d", r, err, tc.Used, tc.Limit)
			}
			// When the budget binds, used is this process's RSS, not the cgroup's.
			r, err = p.Read(128 * MiB)
			if err != nil || r.CapacityBytes != 128*MiB || r.UsedBytes == tc.Used || r.UsedBytes == 0 {
				t.Errorf("Read(128 MiB) = %+v, %v; want RSS against 128 MiB", r, err)
			}
		})
	}
}

func TestFailingCgroupSourceIsSkipped(t *testing.T) {
	for name, tc := range readCgroupVectors(t).Failing {
		t.Run(name, func(t *testing.T) {
			p := NewSystemProbe(WithFSRoot(buildTree(t, tc.Files)))
			for range 2 {
				r, err := p.Read(4 * gib)
				if err != nil || !slices.Equal(r.FailedSources, []string{"cgroup"}) ||
					r.CapacityBytes != expectedCapacity(4*gib, tc.Limit) || r.UsedBytes == 0 {
					t.Errorf("Read() = %+v, %v; want capacity %d, failed [cgroup]", r, err, expectedCapacity(4*gib, tc.Limit))
				}
			}
		})
	}
}

func TestSystemProbeOnThisMachine(t *testing.T) {
	r, err := NewSystemProbe().Read(512 * MiB)
	if err != nil || r.UsedBytes == 0 || r.CapacityBytes == 0 || r.CapacityBytes > 512*MiB {
		t.Errorf("Read(512 MiB) = %+v, %v", r, err)
	}
}

// TestLadderSharedSequences steps the breach-ladder sequences that the
// Python ladder steps too (tests/vectors/ladder/sequences.json).
func TestLadderSharedSequences(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(vectorDir, "ladder", "sequences.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []struct {
			Name    string
			Samples []struct {
				Heap      float64 `json:"heap"`
				AllocRate float64 `json:"alloc_rate"`
			}
			Levels []Level
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Cases) < 5 {
		t.Fatalf("sequences: %v, %d cases", err, len(doc.Cases))
	}
	for _, tc := range doc.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			l := newBreachLadder(DefaultModule("api"))
			got := make([]Level, len(tc.Samples))
			for i, s := range tc.Samples {
				got[i] = l.Observe(s.Heap, s.AllocRate)
			}
			if !slices.Equal(got, tc.Levels) {
				t.Errorf("levels %v, want %v", got, tc.Levels)
			}
		})
	}
}

// fakeProbe reports what the test sets; a nil reading fails.
type fakeProbe struct {
	used, capacity uint64
	err            error
}

func (f *fakeProbe) Read(uint64) (Reading, error) {
	return Reading{UsedBytes: f.used, CapacityBytes: f.capacity}, f.err
}

// fakeClock advances one second per reading.
func fakeClock() func() time.Time {
	t := time.Unix(1_800_000_000, 0)
	return func() time.Time { t = t.Add(time.Second); return t }
}

// restoreGC puts the process's GC settings back after a test that changes them.
func restoreGC(t *testing.T) {
	pct := debug.SetGCPercent(100)
	debug.SetGCPercent(pct)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(pct); debug.SetMemoryLimit(limit) })
}

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestSamplerGoActionsAtTheLevels(t *testing.T) {
	restoreGC(t)
	debug.SetGCPercent(100)
	m := DefaultModule("api") // gc_trigger_ratio 0.75, heap level 3 at 0.95 after 3 samples
	probe := &fakeProbe{used: 100 * MiB, capacity: 1000 * MiB}
	s := NewSampler("v1", m, WithProbe(probe), WithClock(fakeClock()))
	if got, want := debug.SetMemoryLimit(-1), int64(750*MiB); got != want {
		t.Errorf("soft memory limit %d, want gc_trigger_ratio x capacity = %d", got, want)
	}
	probe.capacity = 800 * MiB // a cgroup limit lowered at run time
	s.SampleOnce()
	if got, want := debug.SetMemoryLimit(-1), int64(600*MiB); got != want {
		t.Errorf("soft memory limit %d after the capacity fell, want %d", got, want)
	}
	probe.used = 790 * MiB
	before := forcedGCs()
	for range 3 {
		s.SampleOnce()
	}
	if s.Pressure().Level != LevelCritical {
		t.Fatalf("level %v, want 3", s.Pressure().Level)
	}
	if gcPercent() != tightGCPercent {
		t.Errorf("GOGC %d at level 3, want %d", gcPercent(), tightGCPercent)
	}
	if forcedGCs() <= before || s.ActionCount(ActionCollectGarbage) != 1 {
		t.Errorf("no forced collection on entering level 3 (count %d)", s.ActionCount(ActionCollectGarbage))
	}
	s.SampleOnce() // still level 3: no second collection
	if s.ActionCount(ActionCollectGarbage) != 1 {
		t.Errorf("collected %d times while at level 3, want once on entry", s.ActionCount(ActionCollectGarbage))
	}
	probe.used = 100 * MiB
	for s.Pressure().Level == LevelCritical {
		s.SampleOnce()
	}
	if gcPercent() != 100 {
		t.Errorf("GOGC %d below level 3, want it restored to 100", gcPercent())
	}
	s.Stop()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("soft memory limit %d after Stop, want the one before (none)", got)
	}
}

func TestSamplerDryRunAndDisabledActionsDoNothing(t *testing.T) {
	restoreGC(t)
	debug.SetMemoryLimit(math.MaxInt64)
	m := DefaultModule("api")
	m.DryRun = true
	probe := &fakeProbe{used: 990 * MiB, capacity: 1000 * MiB}
	s := NewSampler("v1", m, WithProbe(probe))
	for range 3 {
		s.SampleOnce()
	}
	if s.Pressure().Level != LevelCritical || s.ActionCount(ActionCollectGarbage) != 1 {
		t.Fatalf("dry run: level %v, collect counted %d", s.Pressure().Level, s.ActionCount(ActionCollectGarbage))
	}
	if debug.SetMemoryLimit(-1) != math.MaxInt64 || gcPercent() == tightGCPercent {
		t.Error("dry run changed the GC settings")
	}
	s2 := NewSampler("v1", DefaultModule("api"), WithProbe(probe), WithoutActions(ActionSoftMemoryLimit))
	if debug.SetMemoryLimit(-1) != math.MaxInt64 || s2.ActionCount(ActionSoftMemoryLimit) != 0 {
		t.Error("a disabled action ran")
	}
}

func TestSamplerProbeFailureHoldsTheLevel(t *testing.T) {
	restoreGC(t)
	probe := &fakeProbe{used: 990 * MiB, capacity: 1000 * MiB}
	var transitions [][2]Level
	s := NewSampler("v1", DefaultModule("api"), WithProbe(probe), WithoutActions(ActionCollectGarbage),
		WithTransitionHook(func(old, new Level, _ Pressure) { transitions = append(transitions, [2]Level{old, new}) }),
		WithTransitionHook(func(Level, Level, Pressure) { panic("a user's bug") }))
	s.SampleOnce()
	probe.err = errors.New("statm: gone")
	p := s.SampleOnce()
	if p.Level != LevelDegraded || p.UsedBytes != 990*MiB || s.ProbeFailures() != 1 {
		t.Errorf("after a failed read: %+v, failures %d; want level 2 held, never a zero", p, s.ProbeFailures())
	}
	want := [][2]Level{{LevelNormal, LevelAlert}, {LevelAlert, LevelDegraded}}
	if !slices.Equal(transitions, want) {
		t.Errorf("transitions %v, want %v", transitions, want)
	}
}

// capturedLogs records the Warningf and Infof lines of the package's logger.
type capturedLogs struct {
	grpclog.DepthLoggerV2
	mu             sync.Mutex
	warnings, info []string
}

func (c *capturedLogs) Warningf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

func (c *capturedLogs) Infof(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info = append(c.info, fmt.Sprintf(format, args...))
}

// captureLogs swaps the package's logger for one that records, until the test ends.
func captureLogs(t *testing.T) *capturedLogs {
	c := &capturedLogs{DepthLoggerV2: logger}
	old := logger
	logger = c
	t.Cleanup(func() { logger = old })
	return c
}

// Level changes are logged as the Python guard logs them: up at Warning, down at Info.
func TestSamplerLogsLevelChanges(t *testing.T) {
	restoreGC(t)
	logs := captureLogs(t)
	probe := &fakeProbe{used: 990 * MiB, capacity: 1000 * MiB}
	s := NewSampler("v1", DefaultModule("api"), WithProbe(probe), WithClock(fakeClock()),
		WithoutActions(ActionCollectGarbage, ActionSoftMemoryLimit, ActionTightenGC))
	for range 3 {
		s.SampleOnce()
	}
	probe.used = 100 * MiB
	for s.Pressure().Level != LevelNormal {
		s.SampleOnce()
	}
	s.Stop()
	logs.mu.Lock()
	defer logs.mu.Unlock()
	wantUp := []string{
		"api entered level 1 (ALERT): usage 99% of 1000 MiB, growth 0.0 MiB/s",
		"api entered level 2 (DEGRADED): usage 99% of 1000 MiB, growth 0.0 MiB/s",
		"api entered level 3 (CRITICAL): usage 99% of 1000 MiB, growth 0.0 MiB/s",
	}
	if !slices.Equal(logs.warnings, wantUp) {
		t.Errorf("warnings %q, want %q", logs.warnings, wantUp)
	}
	var down []string
	for _, line := range logs.info {
		if strings.Contains(line, "stepped down") {
			down = append(down, line)
		}
	}
	if len(down) == 0 || down[len(down)-1] != "api stepped down to level 0 (NORMAL)" {
		t.Errorf("step-down lines %q, want the last to say level 0 (NORMAL)", down)
	}
}

func TestSamplerStartTwiceDoesNotLeak(t *testing.T) {
	restoreGC(t)
	m := DefaultModule("api")
	m.SampleIntervalMs = 5
	base := runtime.NumGoroutine()
	s := NewSampler("v1", m, WithProbe(&fakeProbe{used: MiB, capacity: gib}))
	s.Start()
	s.Start()
	s.Stop()
	s.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Errorf("%d goroutines after Start twice and Stop, want %d", n, base)
	}
}

// TestLevel3HandsMemoryBack spikes real memory against a budget and wants
// level 3's collection to return it to the OS, so the level can fall.
func TestLevel3HandsMemoryBack(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 96 MiB")
	}
	restoreGC(t)
	debug.SetGCPercent(-1) // only our collection may free the spike
	probe := NewSystemProbe()
	base, err := probe.Read(gib)
	if err != nil {
		t.Fatal(err)
	}
	m := DefaultModule("api")
	m.MaxHeapMb = float64(base.UsedBytes/MiB) + 100 // a 96 MiB spike is level 3
	m.Ladder.Confirm.Level3 = 1
	spike := make([][]byte, 96)
	for i := range spike {
		spike[i] = make([]byte, MiB)
		for j := 0; j < MiB; j += 4096 {
			spike[i][j] = 1
		}
	}
	s := NewSampler("v1", m, WithProbe(probe), WithoutActions(ActionSoftMemoryLimit, ActionCollectGarbage))
	runtime.KeepAlive(spike)
	if s.Pressure().Level != LevelCritical {
		t.Fatalf("spike: %+v, want level 3", s.Pressure())
	}
	spike = nil
	withoutCollect := s.SampleOnce().UsedBytes
	s2 := NewSampler("v1", m, WithProbe(probe), WithoutActions(ActionSoftMemoryLimit))
	after := s2.SampleOnce().UsedBytes // the collection ran after the first sample
	t.Logf("after a 96 MiB spike at level 3: RSS %d MiB without the level-3 collection, %d MiB with it (budget %.0f MiB)",
		withoutCollect/MiB, after/MiB, m.MaxHeapMb)
	if after+48*MiB > withoutCollect {
		t.Errorf("RSS %d MiB after level 3's collection, %d MiB before: want >= 48 MiB handed back", after/MiB, withoutCollect/MiB)
	}
	s.Stop()
	s2.Stop()
}

// goMapped is the memory the Go runtime holds from the OS (what its soft
// memory limit governs).
func goMapped() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// peakDuringChurn holds live bytes and allocates churn bytes of garbage,
// returning the peak of goMapped over it.
func peakDuringChurn(live, churn int) uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	hold := make([][]byte, live/MiB)
	for i := range hold {
		hold[i] = make([]byte, MiB)
		for j := 0; j < MiB; j += 4096 {
			hold[i][j] = 1
		}
	}
	var peak uint64
	var sink []byte
	for i := range churn / (64 << 10) {
		sink = make([]byte, 64<<10)
		sink[0] = byte(i)
		if i%16 == 0 {
			peak = max(peak, goMapped())
		}
	}
	runtime.KeepAlive(hold)
	runtime.KeepAlive(sink)
	return peak
}

// BenchmarkSoftLimitPeak measures what the soft memory limit does for a
// service whose live heap is about half its budget: the peak of Go-held
// memory over allocation churn, in percent of the budget, with GOGC alone
// and with the Sampler's soft limit at gc_trigger_ratio (0.75) x capacity,
// in alternating rounds:
//
//	go test -run '^$' -bench SoftLimitPeak -benchtime 6x ./memcontract
func BenchmarkSoftLimitPeak(b *testing.B) {
	pct := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	defer func() { debug.SetGCPercent(pct); debug.SetMemoryLimit(limit) }()
	const budget = 128 * MiB
	live, churn := 68*MiB, 384*MiB // 53 % live
	m := DefaultModule("api")
	m.MaxHeapMb = budget / MiB
	var gogc, soft []float64
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			gogc = append(gogc, 100*float64(peakDuringChurn(live, churn))/budget)
			continue
		}
		s := NewSampler("v1", m, WithProbe(&fakeProbe{used: uint64(live), capacity: budget}))
		soft = append(soft, 100*float64(peakDuringChurn(live, churn))/budget)
		s.Stop()
	}
	b.ReportMetric(median(gogc), "peak%-gogc-alone")
	b.ReportMetric(median(soft), "peak%-soft-limit")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestSoftMemoryLimitStaysAboveLiveMemory: a soft limit under the live heap
// makes the collector run back to back in an idle process (a user's drill:
// 30 collections in 10 s idle at level 3, 83 MiB live under a 75 MiB limit).
func TestSoftMemoryLimitStaysAboveLiveMemory(t *testing.T) {
	restoreGC(t)
	used, live := uint64(300*MiB), uint64(200*MiB)
	probe := ProbeFunc(func(uint64) (Reading, error) {
		return Reading{UsedBytes: used, CapacityBytes: 1000 * MiB, LiveBytes: live, HasLive: true}, nil
	})
	s := NewSampler("v1", DefaultModule("api"), WithProbe(probe), WithClock(fakeClock()))
	defer s.Stop()
	s.SampleOnce()
	if got, want := debug.SetMemoryLimit(-1), int64(750*MiB); got != want {
		t.Errorf("soft memory limit %d with little live memory, want 0.75 x capacity %d", got, want)
	}
	used, live = 950*MiB, 900*MiB
	s.SampleOnce()
	if got, want := debug.SetMemoryLimit(-1), int64(1125*MiB); got != want {
		t.Errorf("soft memory limit %d with 900 MiB live, want 1.25 x live %d", got, want)
	}
}
