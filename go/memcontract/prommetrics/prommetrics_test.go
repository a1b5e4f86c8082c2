package prommetrics_test

import (
	"io"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/memcontract/memcontract/go/memcontract"
	"github.com/memcontract/memcontract/go/memcontract/prommetrics"
)

const mib = 1 << 20

// stepped is a Sampler over a fake probe whose clock moves one second per
// sample.
type stepped struct {
	*memcontract.Sampler
	usage float64
	live  float64 // of capacity; 0: unknown
	now   time.Time
}

func newStepped(t *testing.T, limitMB uint64) *stepped {
	t.Helper()
	// At rest at 42 % before the steps: a first read of 0 followed by 42 % would be
	// growth of 42 MiB/s, which near a cgroup limit is level 3 at once.
	s := &stepped{now: time.Unix(1_800_000_000, 0), usage: 0.42}
	probe := memcontract.ProbeFunc(func(budget uint64) (memcontract.Reading, error) {
		capacity, limit := budget, limitMB*mib
		if limit > 0 && limit < capacity {
			capacity = limit
		}
		r := memcontract.Reading{UsedBytes: uint64(s.usage * float64(capacity)), CapacityBytes: capacity, LimitBytes: limit}
		if s.live > 0 {
			r.LiveBytes, r.HasLive, r.LiveSource = uint64(s.live*float64(capacity)), true, "fake"
		}
		return r, nil
	})
	m := memcontract.DefaultModule("api")
	m.MaxHeapMb = 100
	m.AllocRateMbPerSec = 1 << 20 // growth never counts here
	s.Sampler = memcontract.NewSampler("v1.2", m, memcontract.WithProbe(probe),
		memcontract.WithClock(func() time.Time { return s.now }), memcontract.WithoutActions(memcontract.ActionSoftMemoryLimit, memcontract.ActionTightenGC, memcontract.ActionCollectGarbage))
	t.Cleanup(s.Stop)
	return s
}

func (s *stepped) step(usages ...float64) {
	for _, u := range usages {
		s.usage = u
		s.now = s.now.Add(time.Second)
		s.SampleOnce()
	}
}

// gather collects the memcontract_* families through a pedantic registry
// (which checks every metric against its description).
func gather(t *testing.T, s *stepped) map[string]*dto.MetricFamily {
	t.Helper()
	m := memcontract.DefaultModule("api")
	m.MaxHeapMb = 100
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(prommetrics.NewCollector(s.Sampler, m))
	families, err := registry.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range families {
		out[f.GetName()] = f
	}
	return out
}

func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
	for _, m := range f.GetMetric() {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(got, ",") == strings.Join(labels, ",") {
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("%s has no series %v", name, labels)
	return 0
}

func TestGaugesFollowTheSnapshot(t *testing.T) {
	tests := []struct {
		name      string
		usages    []float64
		limitMB   uint64
		level     float64
		capacity  float64
		limit     bool
		allocRate bool
	}{
		{"calm, no cgroup limit", []float64{0.42}, 0, 0, 100 * mib, false, true},
		{"calm, limit above the budget", []float64{0.42}, 128, 0, 100 * mib, true, true},
		{"level 3, limit below the budget", []float64{0.97, 0.97, 0.97}, 64, 3, 64 * mib, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStepped(t, tt.limitMB)
			s.step(tt.usages...)
			f := gather(t, s)
			if got := value(t, f, "memcontract_level"); got != tt.level {
				t.Errorf("level = %v, want %v", got, tt.level)
			}
			if got := value(t, f, "memcontract_memory_capacity_bytes"); got != tt.capacity {
				t.Errorf("capacity = %v, want %v", got, tt.capacity)
			}
			if got := value(t, f, "memcontract_memory_budget_bytes"); got != 100*mib {
				t.Errorf("budget = %v, want 100 MiB", got)
			}
			if _, ok := f["memcontract_memory_limit_bytes"]; ok != tt.limit {
				t.Errorf("limit family present = %v, want %v", ok, tt.limit)
			} else if ok && value(t, f, "memcontract_memory_limit_bytes") != float64(tt.limitMB*mib) {
				t.Errorf("limit = %v, want %d MiB", value(t, f, "memcontract_memory_limit_bytes"), tt.limitMB)
			}
			if _, ok := f["memcontract_memory_alloc_rate_bytes_per_second"]; ok != tt.allocRate {
				t.Errorf("alloc rate present = %v, want %v (paused at level 2)", ok, tt.allocRate)
			}
			if got := value(t, f, "memcontract_contract_info", "module=api", "version=v1.2"); got != 1 {
				t.Errorf("contract info = %v, want 1", got)
			}
			for _, gone := range []string{"memcontract_memory_live_bytes", "memcontract_memory_retained_plateau_bytes"} {
				if _, ok := f[gone]; ok {
					t.Errorf("%s reported, but the probe reads no live memory", gone)
				}
			}
		})
	}
}

func TestLiveAndPlateauAreExposedWhereTheSnapshotHasThem(t *testing.T) {
	s := newStepped(t, 0)
	s.live = 0.20
	// Level 3 on used memory (three confirmations), then left on live memory
	// while used memory stays flat: the retained plateau is recorded.
	s.step(0.97, 0.97, 0.97, 0.97, 0.97, 0.97)
	p := s.Pressure()
	if !p.HasLive || p.PlateauBytes == 0 {
		t.Fatalf("pressure %+v: want live memory and a plateau", p)
	}
	f := gather(t, s)
	if got := value(t, f, "memcontract_memory_live_bytes"); got != float64(p.LiveBytes) {
		t.Errorf("live = %v, want %d", got, p.LiveBytes)
	}
	if got := value(t, f, "memcontract_memory_retained_plateau_bytes"); got != float64(p.PlateauBytes) {
		t.Errorf("plateau = %v, want %d", got, p.PlateauBytes)
	}
}

func TestTimeAtLevelAndCountersFromZero(t *testing.T) {
	s := newStepped(t, 0)
	s.step(0.5, 0.97, 0.97, 0.97) // levels 0, 1, 2, 3
	s.now = s.now.Add(2 * time.Second)
	f := gather(t, s)
	var got []float64
	for lvl := range 4 {
		got = append(got, value(t, f, "memcontract_time_at_level_seconds_total", "level="+strconv.Itoa(lvl)))
	}
	if want := []float64{2, 1, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("time at level = %v, want %v", got, want)
	}
	for _, name := range []string{"memcontract_shed_total", "memcontract_shed_dry_run_total", "memcontract_fast_fail_total"} {
		if f[name].GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is a %v, want a counter", name, f[name].GetType())
		}
		var classes []string
		for _, m := range f[name].GetMetric() {
			classes = append(classes, m.GetLabel()[0].GetValue())
		}
		sort.Strings(classes)
		if strings.Join(classes, ",") != "core,noncore" {
			t.Errorf("%s classes = %v, want core and noncore from the start", name, classes)
		}
	}
}

// TestAReleaseIsCounted: level 3 held flat hands memory back
// (debug.FreeOSMemory), and the exposition counts it by result.
func TestAReleaseIsCounted(t *testing.T) {
	released := func(f map[string]*dto.MetricFamily) float64 {
		if _, ok := f["memcontract_memory_releases_total"]; !ok {
			return 0 // no release yet in this process
		}
		return value(t, f, "memcontract_memory_releases_total", "result=released")
	}
	s := newStepped(t, 0)
	before := released(gather(t, s))
	s.step(0.5, 0.97, 0.97, 0.97, 0.97, 0.97, 0.97, 0.97, 0.97, 0.97)
	if after := released(gather(t, s)); after <= before {
		t.Errorf("releases = %v after level 3 held flat, %v before; want more", after, before)
	}
}

func TestHandlerServesTheTextFormat(t *testing.T) {
	s := newStepped(t, 0)
	s.step(0.97, 0.97, 0.97)
	m := memcontract.DefaultModule("api")
	rec := httptest.NewRecorder()
	prommetrics.Handler(s.Sampler, m).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{"\nmemcontract_level 3\n", "# TYPE memcontract_shed_total counter\n", "\ngo_goroutines ", "\nprocess_resident_memory_bytes "} {
		if !strings.Contains("\n"+string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
