package memcontract

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// MiB is the number of bytes in a mebibyte.
const MiB = 1 << 20

// Level is a rung of the breach ladder, 0 (inside the contract) to 3
// (shedding non-core calls).
type Level int

// The levels of the breach ladder.
const (
	LevelNormal   Level = 0
	LevelAlert    Level = 1
	LevelDegraded Level = 2
	LevelCritical Level = 3
)

// String returns the level's name, as in Python's memcontract.Level.
func (l Level) String() string {
	switch l {
	case LevelNormal:
		return "NORMAL"
	case LevelAlert:
		return "ALERT"
	case LevelDegraded:
		return "DEGRADED"
	case LevelCritical:
		return "CRITICAL"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// Valid reports whether l is one of the four ladder levels.
func (l Level) Valid() bool { return l >= LevelNormal && l <= LevelCritical }

// Pressure is one sample of a process's memory state. It has the fields of
// the proto message memcontract.v1.MemoryPressure; the level is the ladder
// level 0..3 (the proto's BreachLevel minus one).
type Pressure struct {
	// UsageRatio is the usage the ladder weighs and peers are told: used
	// memory over the effective capacity (may exceed 1), or the live usage
	// (live plus the calm gap, design §4) while a retained plateau is
	// recorded (PlateauBytes > 0).
	UsageRatio float64 `json:"usage_ratio"`
	// UsedBytes is the used memory in bytes.
	UsedBytes uint64 `json:"used_bytes"`
	// CapacityBytes is the effective capacity in bytes.
	CapacityBytes uint64 `json:"capacity_bytes"`
	// AllocRateBytesPerSec is the smoothed growth rate of used memory.
	AllocRateBytesPerSec float64 `json:"alloc_rate_bytes_per_sec"`
	// AllocRateRatio is the growth rate over the contract's promised rate.
	AllocRateRatio float64 `json:"alloc_rate_ratio"`
	// Level is the breach level in force, 0..3.
	Level Level `json:"level"`
	// ContractVersion is the contract's version.
	ContractVersion string `json:"contract_version"`
	// Module is the name of the module whose contract is in force.
	Module string `json:"module"`
	// SampledAt is when the sample was taken; it travels with millisecond
	// precision.
	SampledAt time.Time `json:"-"`
	// LiveBytes is live memory in bytes: what the program holds (the Go
	// heap's live objects and the stacks), not what the runtime retains.
	// Meaningful only when HasLive.
	LiveBytes uint64 `json:"-"`
	// HasLive reports whether live memory is known.
	HasLive bool `json:"-"`
	// LiveSource names where LiveBytes comes from ("gc/heap/live+stacks").
	LiveSource string `json:"live_source"`
	// PlateauBytes is the retained plateau: used memory when level 3 was
	// left on live memory; 0 when none is recorded.
	PlateauBytes uint64 `json:"-"`
	// Instance is the reporting process's instance id (0: not named); a
	// Server and a Client stamp their own (Instance()) on what they send.
	Instance uint64 `json:"instance_id,omitempty"`
	// LimitBytes is the process's cgroup memory limit (the kernel's
	// hard limit), 0 without one. Local only: not on the wire.
	LimitBytes uint64 `json:"-"`
}

// LiveRatio returns live memory over capacity, and whether it is known.
func (p Pressure) LiveRatio() (float64, bool) {
	if !p.HasLive || p.CapacityBytes == 0 {
		return 0, false
	}
	return float64(p.LiveBytes) / float64(p.CapacityBytes), true
}

// SampledAtUnixMilli returns SampledAt in Unix milliseconds, 0 for the zero
// time.
func (p Pressure) SampledAtUnixMilli() int64 {
	if p.SampledAt.IsZero() {
		return 0
	}
	return p.SampledAt.UnixMilli()
}

// Proto returns p as a memcontract.v1.MemoryPressure message.
func (p Pressure) Proto() *memcontractv1.MemoryPressure {
	ms := p.SampledAtUnixMilli()
	return &memcontractv1.MemoryPressure{
		UsageRatio:           p.UsageRatio,
		UsedBytes:            p.UsedBytes,
		CapacityBytes:        p.CapacityBytes,
		AllocRateBytesPerSec: p.AllocRateBytesPerSec,
		Level:                memcontractv1.BreachLevel(p.Level + 1),
		ContractVersion:      p.ContractVersion,
		Module:               p.Module,
		SampledAt:            &timestamppb.Timestamp{Seconds: ms / 1000, Nanos: int32(ms%1000) * 1e6},
		AllocRateRatio:       p.AllocRateRatio,
		LiveBytes:            optional(p.HasLive, p.LiveBytes),
		PlateauBytes:         optional(p.PlateauBytes > 0, p.PlateauBytes),
		LiveSource:           p.LiveSource,
		InstanceId:           p.Instance,
	}
}

// optional returns &v when present, else nil (an absent proto3 optional).
func optional(present bool, v uint64) *uint64 {
	if !present {
		return nil
	}
	return &v
}

// pressureFromProto converts a MemoryPressure message. It fails when the
// level is not one of the four ladder levels or the usage ratio is not a
// finite non-negative number.
func pressureFromProto(m *memcontractv1.MemoryPressure) (Pressure, error) {
	lvl := Level(m.GetLevel()) - 1
	if !lvl.Valid() {
		return Pressure{}, fmt.Errorf("memcontract: invalid breach level %d", m.GetLevel())
	}
	u := m.GetUsageRatio()
	if math.IsNaN(u) || math.IsInf(u, 0) || u < 0 {
		return Pressure{}, fmt.Errorf("memcontract: invalid usage ratio %v", u)
	}
	p := Pressure{
		UsageRatio:           u,
		UsedBytes:            m.GetUsedBytes(),
		CapacityBytes:        m.GetCapacityBytes(),
		AllocRateBytesPerSec: m.GetAllocRateBytesPerSec(),
		AllocRateRatio:       m.GetAllocRateRatio(),
		Level:                lvl,
		ContractVersion:      m.GetContractVersion(),
		Module:               m.GetModule(),
		LiveBytes:            m.GetLiveBytes(),
		HasLive:              m.LiveBytes != nil,
		LiveSource:           m.GetLiveSource(),
		PlateauBytes:         m.GetPlateauBytes(),
		Instance:             m.GetInstanceId(),
	}
	if ts := m.GetSampledAt(); ts != nil && (ts.GetSeconds() != 0 || ts.GetNanos() != 0) {
		p.SampledAt = ts.AsTime()
	}
	return p, nil
}

// MarshalJSON encodes p with the field names of the shared test vectors
// (snake case; sampled_at as sampled_at_unix_ms).
func (p Pressure) MarshalJSON() ([]byte, error) {
	type plain Pressure
	return json.Marshal(struct {
		plain
		SampledAtUnixMs int64   `json:"sampled_at_unix_ms"`
		LiveBytes       *uint64 `json:"live_bytes"`
		PlateauBytes    *uint64 `json:"plateau_bytes"`
	}{plain(p), p.SampledAtUnixMilli(), optional(p.HasLive, p.LiveBytes), optional(p.PlateauBytes > 0, p.PlateauBytes)})
}
