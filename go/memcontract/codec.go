package memcontract

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// Metadata keys of the wire protocol (lower case, as gRPC requires).
const (
	UsageKey         = "x-memory-usage"
	CapacityKey      = "x-memory-capacity"
	ContractKey      = "x-memory-contract"
	LevelKey         = "x-memory-level"
	PressureBinKey   = "x-memory-pressure-bin"
	LoadReportKey    = "endpoint-load-metrics-bin"
	RetryPushbackKey = "grpc-retry-pushback-ms"
)

// Named metrics of the ORCA load report.
const (
	LevelMetricName          = "memcontract.level"
	AllocRateRatioMetricName = "memcontract.alloc_rate_ratio"
)

// maxValueLen is the longest text value a parser accepts, in bytes.
const maxValueLen = 64

var (
	usageRE    = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?%?$`)
	capacityRE = regexp.MustCompile(`^[0-9]{1,12}$`)
	contractRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)
	levelRE    = regexp.MustCompile(`^[0-3]$`)
)

var deterministic = proto.MarshalOptions{Deterministic: true}

// FormatUsage formats a usage ratio as the x-memory-usage value: the ratio
// clamped to [0, 10] in percent with one decimal, a trailing ".0" dropped,
// and "%" appended ("68.4%", "68%").
func FormatUsage(ratio float64) string {
	if math.IsNaN(ratio) {
		ratio = 0
	}
	u := math.Min(math.Max(ratio, 0), 10) * 100
	s := strconv.FormatFloat(u, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + "%"
}

// EncodePairs returns the x-memory-* keys of p as key/value pairs in wire
// order: usage, capacity, contract (omitted when empty), level, pressure-bin.
// The -bin value is the raw serialized message (gRPC base64-encodes it).
func EncodePairs(p Pressure) []string {
	kv := make([]string, 0, 10)
	kv = append(kv,
		UsageKey, FormatUsage(p.UsageRatio),
		CapacityKey, strconv.FormatUint(p.CapacityBytes/MiB, 10),
	)
	if p.ContractVersion != "" {
		kv = append(kv, ContractKey, p.ContractVersion)
	}
	kv = append(kv, LevelKey, strconv.Itoa(int(p.Level)))
	if b, err := deterministic.Marshal(p.Proto()); err == nil {
		kv = append(kv, PressureBinKey, string(b))
	}
	return kv
}

// Encode returns the x-memory-* keys of p as metadata.
func Encode(p Pressure) metadata.MD {
	return metadata.Pairs(EncodePairs(p)...)
}

// LoadReport returns the ORCA load report of p: mem_utilization is the usage
// ratio clamped to [0, 1], application_utilization the usage ratio (see
// AppUtilization); the named metrics are the level and the alloc-rate
// ratio. Call rates are not part of a pressure: a Server adds them.
func LoadReport(p Pressure) *v3orcapb.OrcaLoadReport {
	return &v3orcapb.OrcaLoadReport{
		MemUtilization:         MemUtilization(p),
		ApplicationUtilization: AppUtilization(p),
		NamedMetrics: map[string]float64{
			LevelMetricName:          float64(p.Level),
			AllocRateRatioMetricName: p.AllocRateRatio,
		},
	}
}

// MarshalLoadReport returns the deterministic serialization of
// LoadReport(p), the value of endpoint-load-metrics-bin.
func MarshalLoadReport(p Pressure) ([]byte, error) {
	return deterministic.Marshal(LoadReport(p))
}

// MemUtilization returns the usage ratio clamped to [0, 1], as ORCA's
// mem_utilization requires.
func MemUtilization(p Pressure) float64 {
	if math.IsNaN(p.UsageRatio) {
		return 0
	}
	return math.Min(math.Max(p.UsageRatio, 0), 1)
}

func validText(v string) bool {
	return len(v) <= maxValueLen && utf8.ValidString(v)
}

// ParseUsage parses an x-memory-usage value ("68", "68%", "68.4%") into a
// usage ratio. Values above 1000% are rejected.
func ParseUsage(v string) (float64, bool) {
	if !validText(v) || !usageRE.MatchString(v) {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || f > maxUsagePercent {
		return 0, false
	}
	return f / 100, true
}

// ParseCapacity parses an x-memory-capacity value (MiB) into bytes.
func ParseCapacity(v string) (uint64, bool) {
	if !validText(v) || !capacityRE.MatchString(v) {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false
	}
	return n * MiB, true
}

// ParseContract validates an x-memory-contract value.
func ParseContract(v string) (string, bool) {
	if !validText(v) || !contractRE.MatchString(v) {
		return "", false
	}
	return v, true
}

// ParseLevel parses an x-memory-level value.
func ParseLevel(v string) (Level, bool) {
	if !validText(v) || !levelRE.MatchString(v) {
		return 0, false
	}
	return Level(v[0] - '0'), true
}

// ParsePressureBin parses an x-memory-pressure-bin value (raw bytes). It
// fails when the bytes do not unmarshal, the level is not 1..4 on the wire,
// or the usage ratio or an allocation rate is not a finite non-negative
// number. A usage ratio above 10 (1000 %) is read as 10, as x-memory-usage
// carries it.
func ParsePressureBin(b []byte) (Pressure, bool) {
	if len(b) > MaxBinBytes {
		return Pressure{}, false
	}
	var m memcontractv1.MemoryPressure
	if err := proto.Unmarshal(b, &m); err != nil {
		return Pressure{}, false
	}
	if v := m.GetContractVersion(); v != "" {
		if _, ok := ParseContract(v); !ok {
			return Pressure{}, false
		}
	}
	p, err := PressureFromProto(&m)
	if err != nil || !finiteNonNegative(p.AllocRateBytesPerSec) || !finiteNonNegative(p.AllocRateRatio) {
		return Pressure{}, false
	}
	// A peer far over its budget is read as 1000 %, as x-memory-usage carries it.
	p.UsageRatio = math.Min(p.UsageRatio, maxUsagePercent/100)
	return p, true
}

func finiteNonNegative(f float64) bool {
	return !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0
}

// maxUsagePercent is the largest usage a peer may report (x-memory-usage and
// the usage ratio of x-memory-pressure-bin alike): 1000 %.
const maxUsagePercent = 1000

// MaxBinBytes bounds an x-memory-pressure-bin value: the message carries a
// handful of scalars, so anything larger is not a peer's pressure.
const MaxBinBytes = 1024

// Decode reads a peer's pressure from metadata (request headers on a server,
// trailers on a client). Each value of each x-memory-* key is checked; an
// invalid value is ignored and counted in invalid, and the last valid value
// of a key is used. When x-memory-pressure-bin parses it wins; otherwise the
// pressure is assembled from the text keys. ok reports whether a pressure
// was found: a valid x-memory-pressure-bin, or a valid usage or level (capacity
// and contract version alone describe no pressure).
func Decode(md metadata.MD) (p Pressure, ok bool, invalid int) {
	var (
		text     Pressure
		haveText bool
		bin      Pressure
		binOK    bool
	)
	for _, v := range md.Get(UsageKey) {
		if r, good := ParseUsage(v); good {
			text.UsageRatio, haveText = r, true
		} else {
			invalid++
		}
	}
	for _, v := range md.Get(CapacityKey) {
		if c, good := ParseCapacity(v); good {
			text.CapacityBytes = c
		} else {
			invalid++
		}
	}
	for _, v := range md.Get(ContractKey) {
		if c, good := ParseContract(v); good {
			text.ContractVersion = c
		} else {
			invalid++
		}
	}
	for _, v := range md.Get(LevelKey) {
		if l, good := ParseLevel(v); good {
			text.Level, haveText = l, true
		} else {
			invalid++
		}
	}
	for _, v := range md.Get(PressureBinKey) {
		if b, good := ParsePressureBin([]byte(v)); good {
			bin, binOK = b, true
		} else {
			invalid++
		}
	}
	switch {
	case binOK:
		return bin, true, invalid
	case haveText:
		return text, true, invalid
	}
	return Pressure{}, false, invalid
}
