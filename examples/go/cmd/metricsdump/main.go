// Command metricsdump prints the /metrics exposition (package prommetrics)
// of a Sampler stepped through given usages by a fake probe, for the test
// that compares it with the Python library's exposition of the same state.
//
//	metricsdump -contract examples/go/contracts/memory_contract.yaml -module inventory \
//	    -usage 0.42,0.97,0.97,0.97 -cgroup-limit-mb 128
//
// Each usage is one sample (the sampler's clock advances one sample
// interval before each); the exposition after the last one goes to stdout.
package main

import (
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/memcontract/memcontract/examples/go/internal/cli"
	"github.com/memcontract/memcontract/go/memcontract"
	"github.com/memcontract/memcontract/go/memcontract/prommetrics"
)

func main() {
	var (
		f       cli.Flags
		usages  = flag.String("usage", "0.5", "comma-separated usage ratios, one per sample")
		limitMB = flag.Float64("cgroup-limit-mb", 0, "cgroup memory limit the fake probe reports (0: none)")
	)
	f.Register(flag.CommandLine, "inventory")
	flag.Parse()
	version, module, err := f.LoadModule()
	if err != nil {
		cli.Fatal(err)
	}
	var steps []float64
	for _, text := range strings.Split(*usages, ",") {
		u, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		if err != nil {
			cli.Fatal(fmt.Errorf("-usage %q: %v", text, err))
		}
		steps = append(steps, u)
	}
	limit := uint64(*limitMB * memcontract.MiB)
	usage := 0.0
	probe := memcontract.ProbeFunc(func(budget uint64) (memcontract.Reading, error) {
		capacity := budget
		if limit > 0 && limit < capacity {
			capacity = limit
		}
		return memcontract.Reading{
			UsedBytes: uint64(usage * float64(capacity)), CapacityBytes: capacity, LimitBytes: limit,
		}, nil
	})
	now := time.Unix(1_800_000_000, 0)
	interval := time.Duration(module.GetSampleIntervalMs()) * time.Millisecond
	sampler := memcontract.NewSampler(version, module, memcontract.WithProbe(probe),
		memcontract.WithClock(func() time.Time { return now }))
	defer sampler.Stop()
	for _, u := range steps {
		usage = u
		now = now.Add(interval)
		sampler.SampleOnce()
	}
	rec := httptest.NewRecorder()
	prommetrics.Handler(sampler, module).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if _, err := os.Stdout.Write(rec.Body.Bytes()); err != nil {
		cli.Fatal(err)
	}
}
