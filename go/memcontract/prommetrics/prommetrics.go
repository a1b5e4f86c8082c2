// Package prommetrics exports memcontract's state and counts to Prometheus
// (prometheus/client_golang) with the names of the Python library's
// /metrics: the memcontract_* families listed in docs/operations.md.
//
// It is a package of its own so that only programs that import it build
// client_golang. One call serves /metrics:
//
//	sampler := memcontract.NewSampler(c.Version, c.Module)
//	http.Handle("/metrics", prommetrics.Handler(sampler, c.Module))
//
// or, with a registry of your own:
//
//	registry.MustRegister(prommetrics.NewCollector(sampler, c.Module))
//
// Gauges are read from the source's cached snapshot when Prometheus
// scrapes (no system call); counters are the process-wide
// memcontract.ReadCounters.
package prommetrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
	"github.com/memcontract/memcontract/go/memcontract"
)

// Handler returns an http.Handler serving the memcontract_* families of
// src (module m's contract) with the Go runtime's go_* and the process's
// process_* families, in Prometheus's text format.
func Handler(src memcontract.Source, m *memcontractv1.ModuleContract) http.Handler {
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		NewCollector(src, m),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
}

// levelTimer is a source that knows the time it spent at each level
// (memcontract.Sampler).
type levelTimer interface {
	TimeAtLevel() [4]time.Duration
}

// Collector is a prometheus.Collector of the memcontract_* families.
type Collector struct {
	src    memcontract.Source
	budget float64
	dryRun string
	// observed is the time at level seen at scrapes, for sources that do
	// not keep it themselves (a memcontract.StaticSource).
	observed observedLevels
}

// NewCollector returns a Collector of src, the pressure source of module
// m's contract (a memcontract.Sampler, or any Source).
func NewCollector(src memcontract.Source, m *memcontractv1.ModuleContract) *Collector {
	return &Collector{
		src:    src,
		budget: m.GetMaxHeapMb() * memcontract.MiB,
		dryRun: strconv.FormatBool(m.GetDryRun()),
	}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The families, with the Python library's names, help texts and labels.
var (
	usageRatio   = desc("memcontract_memory_usage_ratio", "Used memory over capacity")
	usedBytes    = desc("memcontract_memory_used_bytes", "Used memory (RSS, or the cgroup working set)")
	liveBytes    = desc("memcontract_memory_live_bytes", "Live memory: what the program holds")
	plateauBytes = desc("memcontract_memory_retained_plateau_bytes", "Used memory retained after level 3 was left on live memory")
	capacity     = desc("memcontract_memory_capacity_bytes", "Effective capacity: min(budget, cgroup limit, physical)")
	limitBytes   = desc("memcontract_memory_limit_bytes", "The cgroup memory limit (the kernel's hard limit)")
	budgetBytes  = desc("memcontract_memory_budget_bytes", "The contract's memory budget (max_heap_mb)")
	level        = desc("memcontract_level", "Breach level in force (0-3)")
	allocRate    = desc("memcontract_memory_alloc_rate_bytes_per_second", "Smoothed growth rate of used memory")
	info         = desc("memcontract_contract_info", "Always 1; the module and contract version in force as attributes", "module", "version")
	timeAtLevel  = desc("memcontract_time_at_level_seconds_total", "Time spent at each breach level, by level", "level")
	shed         = desc("memcontract_shed_total", "Calls shed with RESOURCE_EXHAUSTED at level 3, by method class", "class")
	wouldShed    = desc("memcontract_shed_dry_run_total", "Calls that would have been shed (dry run), by method class", "class")
	fastFailed   = desc("memcontract_fast_fail_total", "Calls failed locally because the target reports level 3, by method class", "class")
	halfOpen     = desc("memcontract_shed_half_open_admitted_total", "Non-core calls admitted at level 3 while shedding half-open")
	recycles     = desc("memcontract_recycles_total", "Times level 3 was stuck and the process was asked to recycle")
	untrusted    = desc("memcontract_peer_untrusted_total", "Calls whose peer pressure was ignored as untrusted")
	probeFailed  = desc("memcontract_probe_failures_total", "Memory sources that failed to read, by source", "source")
	releases     = desc("memcontract_memory_releases_total", "Memory releases at level 3 (debug.FreeOSMemory), by result", "result")
	actions      = desc("memcontract_actions_total", "Ladder actions engaged or released, by action and dry run", "action", "dry_run")
)

var allDescs = []*prometheus.Desc{
	usageRatio, usedBytes, liveBytes, plateauBytes, capacity, limitBytes, budgetBytes, level,
	allocRate, info, timeAtLevel, shed, wouldShed, fastFailed, halfOpen, recycles, untrusted,
	probeFailed, releases, actions,
}

// Describe sends the descriptors of every family.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect sends the current values: gauges from the source's snapshot,
// counters from memcontract.ReadCounters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	p := c.src.Pressure()
	c.collectGauges(ch, p)
	c.collectTimeAtLevel(ch, p.Level)
	collectCounters(ch, memcontract.ReadCounters(), c.dryRun)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func (c *Collector) collectGauges(ch chan<- prometheus.Metric, p memcontract.Pressure) {
	gauge(ch, usageRatio, p.UsageRatio)
	gauge(ch, usedBytes, float64(p.UsedBytes))
	gauge(ch, capacity, float64(p.CapacityBytes))
	gauge(ch, budgetBytes, c.budget)
	gauge(ch, level, float64(p.Level))
	gauge(ch, info, 1, p.Module, p.ContractVersion)
	if p.LimitBytes > 0 {
		gauge(ch, limitBytes, float64(p.LimitBytes))
	}
	if p.HasLive {
		gauge(ch, liveBytes, float64(p.LiveBytes))
	}
	if p.PlateauBytes > 0 {
		gauge(ch, plateauBytes, float64(p.PlateauBytes))
	}
	// Non-essential telemetry pauses at level 2, as in the Python library.
	if p.Level < memcontract.LevelDegraded {
		gauge(ch, allocRate, p.AllocRateBytesPerSec)
	}
}

func (c *Collector) collectTimeAtLevel(ch chan<- prometheus.Metric, now memcontract.Level) {
	var spent [4]time.Duration
	if t, ok := c.src.(levelTimer); ok {
		spent = t.TimeAtLevel()
	} else {
		spent = c.observed.update(now, time.Now())
	}
	for lvl, d := range spent {
		counter(ch, timeAtLevel, d.Seconds(), strconv.Itoa(lvl))
	}
}

func collectCounters(ch chan<- prometheus.Metric, n memcontract.Counters, dryRun string) {
	for _, byClass := range []struct {
		d *prometheus.Desc
		n memcontract.ByClass
	}{{shed, n.Shed}, {wouldShed, n.WouldShed}, {fastFailed, n.FastFailed}} {
		counter(ch, byClass.d, float64(byClass.n.Core), "core")
		counter(ch, byClass.d, float64(byClass.n.NonCore), "noncore")
	}
	counter(ch, halfOpen, float64(n.HalfOpenAdmitted))
	counter(ch, recycles, float64(n.Recycles))
	counter(ch, untrusted, float64(n.Untrusted))
	for source, v := range n.ProbeFailures {
		counter(ch, probeFailed, float64(v), source)
	}
	if n.Releases > 0 {
		counter(ch, releases, float64(n.Releases), "released")
	}
	for action, v := range n.Actions {
		counter(ch, actions, float64(v), action, dryRun)
	}
}

// observedLevels attributes the time between scrapes to the level seen at
// the earlier one.
type observedLevels struct {
	mu    sync.Mutex
	level memcontract.Level
	at    time.Time
	spent [4]time.Duration
}

func (o *observedLevels) update(lvl memcontract.Level, now time.Time) [4]time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.at.IsZero() && now.After(o.at) && o.level.Valid() {
		o.spent[o.level] += now.Sub(o.at)
	}
	o.level, o.at = lvl, now
	return o.spent
}
