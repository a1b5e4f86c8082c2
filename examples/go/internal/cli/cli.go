// Package cli holds what the example binaries share: contract and pressure
// flags, the loopback-only address check and JSON-line output.
package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
	"github.com/memcontract/memcontract/go/memcontract"
)

// PingMethod is core in the example contract, and in the default one used
// without a contract file.
const PingMethod = "/inventory.v1.InventoryService/Ping"

// Flags are the contract and pressure flags of both binaries.
type Flags struct {
	Contract       string
	Module         string
	ForceUsage     float64
	ForceLevel     int
	ForceAllocRate float64
	// Recycle, when set, is the sampler's hook for a stuck level 3 under
	// on_stuck: recycle (memcontract.WithRecycle).
	Recycle func(memcontract.Pressure)
}

// Register defines the flags on fs; module is the default module name.
// The force flags default to $MEMCONTRACT_FORCE_USAGE,
// $MEMCONTRACT_FORCE_LEVEL and $MEMCONTRACT_FORCE_ALLOC_RATE_RATIO.
func (f *Flags) Register(fs *flag.FlagSet, module string) {
	fs.StringVar(&f.Contract, "contract", os.Getenv("MEMCONTRACT_CONTRACT"), "memory_contract.yaml to load (default: built-in defaults; env MEMCONTRACT_CONTRACT)")
	fs.StringVar(&f.Module, "module", module, "module of the contract in force")
	fs.Float64Var(&f.ForceUsage, "force-usage", envFloat("MEMCONTRACT_FORCE_USAGE", -1), "report this usage ratio instead of sampling (e.g. 0.97; <0: sample; env MEMCONTRACT_FORCE_USAGE)")
	fs.IntVar(&f.ForceLevel, "force-level", int(envFloat("MEMCONTRACT_FORCE_LEVEL", -1)), "report this breach level 0..3 instead of sampling (<0: from usage; env MEMCONTRACT_FORCE_LEVEL)")
	fs.Float64Var(&f.ForceAllocRate, "force-alloc-rate-ratio", envFloat("MEMCONTRACT_FORCE_ALLOC_RATE_RATIO", 0), "alloc-rate ratio reported with a forced pressure")
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

// LoadModule loads the contract (or the defaults) and returns its version and
// the module in force.
func (f *Flags) LoadModule() (string, *memcontractv1.ModuleContract, error) {
	if f.Contract == "" {
		m := memcontract.DefaultModule(f.Module)
		m.CoreMethods = append(m.CoreMethods, PingMethod)
		return "v1", m, nil
	}
	c, err := memcontract.LoadContract(f.Contract, memcontract.WithModule(f.Module))
	if err != nil {
		return "", nil, err
	}
	return c.Version, c.Module, nil
}

// Forced reports whether a pressure is forced.
func (f *Flags) Forced() bool { return f.ForceUsage >= 0 || f.ForceLevel >= 0 }

// Source returns the process's pressure source: a StaticSource when a
// pressure is forced (or the sampler could be replaced at run time), else a
// started Sampler. stop releases it.
func (f *Flags) Source(version string, m *memcontractv1.ModuleContract) (src memcontract.Source, static *memcontract.StaticSource, stop func(), err error) {
	if !f.Forced() {
		var opts []memcontract.SamplerOption
		if f.Recycle != nil {
			opts = append(opts, memcontract.WithRecycle(f.Recycle))
		}
		s := memcontract.NewSampler(version, m, opts...)
		s.Start()
		return s, nil, s.Stop, nil
	}
	if f.ForceLevel > 3 {
		return nil, nil, nil, fmt.Errorf("-force-level %d: want 0..3", f.ForceLevel)
	}
	static = memcontract.NewStaticSource(Forced(version, m, max(f.ForceUsage, 0), f.ForceLevel, f.ForceAllocRate))
	return static, static, func() {}, nil
}

// Forced returns a forced pressure of module m: capacity is the module's
// budget; level < 0 takes the level the ladder's thresholds give at once.
func Forced(version string, m *memcontractv1.ModuleContract, usage float64, level int, allocRateRatio float64) memcontract.Pressure {
	capacity := uint64(m.GetMaxHeapMb() * memcontract.MiB)
	lvl := memcontract.Level(level)
	if level < 0 {
		lvl = memcontract.NewLadder(m).Instant(usage, allocRateRatio)
	}
	return memcontract.Pressure{
		UsageRatio:           usage,
		UsedBytes:            uint64(usage * float64(capacity)),
		CapacityBytes:        capacity,
		AllocRateBytesPerSec: allocRateRatio * m.GetAllocRateMbPerSec() * memcontract.MiB,
		AllocRateRatio:       allocRateRatio,
		Level:                lvl,
		ContractVersion:      version,
		Module:               m.GetName(),
	}
}

// CheckLoopback fails unless addr is host:port with a loopback host.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s: only loopback addresses (127.0.0.1) are allowed", addr)
}

// Printer writes JSON lines to stdout; it is safe for concurrent use.
type Printer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewPrinter returns a Printer writing to stdout.
func NewPrinter() *Printer { return &Printer{enc: json.NewEncoder(os.Stdout)} }

// Print writes v as one JSON line.
func (p *Printer) Print(v any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.enc.Encode(v)
}

// Fatal prints err to stderr and exits with status 2.
func Fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
	codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
	codes.Unauthenticated: "UNAUTHENTICATED",
}

// CodeName returns the canonical name of a status code, as grpcio spells
// it ("RESOURCE_EXHAUSTED").
func CodeName(c codes.Code) string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("CODE(%d)", uint32(c))
}
