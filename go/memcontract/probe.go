package memcontract

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/grpclog"
)

var logger = grpclog.Component("memcontract")

// Reading is one reading of a Probe.
type Reading struct {
	// UsedBytes is the memory in use: the resident set size, or the cgroup's
	// working set when the cgroup limit binds.
	UsedBytes uint64
	// CapacityBytes is min(budget, cgroup limit, physical memory).
	CapacityBytes uint64
	// FailedSources names the sources that failed in this reading ("cgroup"),
	// skipped and counted.
	FailedSources []string
	// LimitBytes is the memory limit of the process's cgroup (the
	// smallest up the tree), 0 without one; reported even where the budget
	// is smaller.
	LimitBytes uint64
}

// Probe reads memory (a resource monitor: it reports, never decides). Read
// may fail; the sampler then counts the failure and holds its level (a failed
// read is never a zero).
type Probe interface {
	Read(budgetBytes uint64) (Reading, error)
}

// ProbeFunc adapts a function to a Probe (tests step one by hand).
type ProbeFunc func(budgetBytes uint64) (Reading, error)

// Read calls f.
func (f ProbeFunc) Read(budgetBytes uint64) (Reading, error) { return f(budgetBytes) }

// SystemProbe is the real probe: this process's memory against the
// contract's budget, the cgroup and the host, with the rules of Python's
// SystemProbe. Capacity is the smallest of the budget, the cgroup memory
// limit (v1 or v2, resolved from /proc/self/cgroup and mountinfo, the
// smallest limit up the parents) and physical memory. Used memory is the
// resident set size, or the working set (usage minus inactive file cache)
// of the cgroup whose limit binds when that limit is the smallest.
//
// Cgroup paths are resolved once, when built; the limit is re-read at most
// every 2 s. A failing cgroup file is skipped, named in FailedSources and
// logged once.
type SystemProbe struct {
	root     string
	physical uint64
	cgroup   *cgroupPaths
	resolveE error

	mu     sync.Mutex
	statm  *os.File
	limit  cgroupLimit
	readAt time.Time
	logged map[string]bool
}

// slowEvery is how long a cgroup limit read is reused.
const slowEvery = 2 * time.Second

// ProbeOption configures NewSystemProbe.
type ProbeOption func(*SystemProbe)

// WithFSRoot reads /proc and /sys under root instead of "/" (fixture trees
// in tests). The resident set size falls back to this process's when root
// has no proc/self/statm.
func WithFSRoot(root string) ProbeOption {
	return func(p *SystemProbe) { p.root = root }
}

// NewSystemProbe resolves this process's cgroup and returns the probe.
func NewSystemProbe(opts ...ProbeOption) *SystemProbe {
	p := &SystemProbe{root: "/", logged: map[string]bool{}}
	for _, o := range opts {
		o(p)
	}
	p.physical = physicalMemory()
	p.cgroup, p.resolveE = resolveCgroup(p.root)
	for _, path := range []string{filepath.Join(p.root, "proc/self/statm"), "/proc/self/statm"} {
		if f, err := os.Open(path); err == nil {
			p.statm = f
			break
		}
	}
	return p
}

// CgroupVersion returns 1 or 2, the hierarchy the limit is read from, or 0
// without one.
func (p *SystemProbe) CgroupVersion() int {
	if p.cgroup == nil {
		return 0
	}
	return p.cgroup.version
}

// Close releases the open statm file. Reads still work afterwards.
func (p *SystemProbe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.statm == nil {
		return nil
	}
	err := p.statm.Close()
	p.statm = nil
	return err
}

// Read reads memory now against budgetBytes; it fails only when the
// resident set size cannot be read.
func (p *SystemProbe) Read(budgetBytes uint64) (Reading, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rss, err := p.rss()
	if err != nil {
		return Reading{}, err
	}
	var failed []string
	limit := p.readLimit(&failed)
	r := Reading{UsedBytes: rss, CapacityBytes: budgetBytes}
	if limit.found {
		r.LimitBytes = limit.bytes
	}
	if p.physical > 0 && p.physical < r.CapacityBytes {
		r.CapacityBytes = p.physical
	}
	// The cgroup binds only when strictly smaller: on a tie the budget (or
	// the host) constrains this process alone, so RSS is the measure.
	if limit.found && limit.bytes < r.CapacityBytes {
		r.CapacityBytes = limit.bytes
		ws, err := readWorkingSet(p.cgroup.version, limit.directory)
		if err != nil {
			p.fail("cgroup", "cannot read the working set: "+err.Error(), &failed)
		} else {
			r.UsedBytes = ws
		}
	}
	r.FailedSources = failed
	return r, nil
}

func (p *SystemProbe) readLimit(failed *[]string) cgroupLimit {
	if p.resolveE != nil {
		p.fail("cgroup", "cannot resolve the cgroup: "+p.resolveE.Error(), failed)
		return cgroupLimit{}
	}
	if p.cgroup == nil {
		return cgroupLimit{}
	}
	now := time.Now()
	if p.readAt.IsZero() || now.Sub(p.readAt) >= slowEvery {
		p.limit, p.readAt = p.cgroup.readLimit(), now
	}
	if len(p.limit.errs) > 0 {
		p.fail("cgroup", strings.Join(p.limit.errs, "; "), failed)
	}
	return p.limit
}

func (p *SystemProbe) fail(source, detail string, failed *[]string) {
	if !contains(*failed, source) {
		*failed = append(*failed, source)
	}
	if !p.logged[source] {
		p.logged[source] = true
		logger.Warningf("memory probe source %q skipped (%s); further failures of it are not logged", source, detail)
	}
}

// rss is the resident set size from statm (one pread on a kept-open file),
// or the Go runtime's mapped memory where there is no /proc.
func (p *SystemProbe) rss() (uint64, error) {
	if p.statm == nil {
		return runtimeMappedBytes()
	}
	var buf [256]byte
	n, err := p.statm.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0, err
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) < 2 {
		return 0, fmt.Errorf("statm: unexpected %q", buf[:n])
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("statm: %w", err)
	}
	return pages * uint64(os.Getpagesize()), nil
}

func runtimeMappedBytes() (uint64, error) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0, errors.New("runtime/metrics: no memory classes")
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64(), nil
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
			if kb, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
