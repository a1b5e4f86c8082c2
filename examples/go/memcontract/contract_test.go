package memcontract

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	memcontractv1 "github.com/memcontract/memcontract/examples/go/gen/memcontract/v1"
)

// defaultModule is a module with every field at the Python side's default.
func defaultModule(name string) *memcontractv1.ModuleContract {
	return &memcontractv1.ModuleContract{
		Name:               name,
		MaxHeapMb:          1800,
		AllocRateMbPerSec:  12.5,
		GcTriggerRatio:     0.75,
		RequiredGcPausesMs: "<5",
		CoreMethods:        []string{HealthMethods},
		SampleIntervalMs:   500,
		Ladder: &memcontractv1.Ladder{
			Heap:         &memcontractv1.LevelThresholds{Level1: 0.80, Level2: 0.90, Level3: 0.95},
			AllocRate:    &memcontractv1.LevelThresholds{Level1: 1.0, Level2: 1.5, Level3: 2.0},
			Confirm:      &memcontractv1.LevelCounts{Level1: 1, Level2: 2, Level3: 3},
			RecoverAfter: 5,
		},
		NoncriticalLoggers: []string{},
		RetryPushbackMs:    1000,
		OnStuck:            OnStuckHalfOpen,
		Orca:               &memcontractv1.OrcaOptions{ApplicationUtilization: UtilizationMemory, Rates: RatesCalls},
		MaxFailFastMs:      30000,
	}
}

func TestLoadExampleContracts(t *testing.T) {
	tests := []struct {
		file string
		want *memcontractv1.Contract
	}{
		{"memory_contract.yaml", &memcontractv1.Contract{Version: "v1.2", Modules: []*memcontractv1.ModuleContract{defaultModule("transaction-processor")}}},
		{"seed.yaml", &memcontractv1.Contract{Version: "v1", Modules: []*memcontractv1.ModuleContract{defaultModule("transaction-processor")}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := LoadContract(filepath.Join("../../contracts", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("LoadContract(%s) diff (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

func TestParseContractYAMLDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		edit func(m *memcontractv1.ModuleContract)
	}{
		{"only a name", "modules: [{name: api}]", func(*memcontractv1.ModuleContract) {}},
		{"partial ladder", `
modules:
  - name: api
    ladder:
      heap: {level1: 0.7}
      confirm: {level3: 4}
`, func(m *memcontractv1.ModuleContract) {
			m.Ladder.Heap.Level1 = 0.7
			m.Ladder.Confirm.Level3 = 4
		}},
		{"explicit empty core methods", "modules: [{name: api, core_methods: []}]", func(m *memcontractv1.ModuleContract) {
			m.CoreMethods = nil
		}},
		{"orca utilization off", "modules: [{name: api, orca: {application_utilization: none, rates: headroom}}]", func(m *memcontractv1.ModuleContract) {
			m.Orca.ApplicationUtilization = UtilizationNone
			m.Orca.Rates = RatesHeadroom
		}},
		{"explicit zero pushback and dry run", "modules: [{name: api, retry_pushback_ms: 0, dry_run: true}]", func(m *memcontractv1.ModuleContract) {
			m.RetryPushbackMs = 0
			m.DryRun = true
		}},
		{"recycle when stuck", "modules: [{name: api, on_stuck: recycle}]", func(m *memcontractv1.ModuleContract) {
			m.OnStuck = OnStuckRecycle
		}},
		{"explicit zero fail-fast window", "modules: [{name: api, max_fail_fast_ms: 0}]", func(m *memcontractv1.ModuleContract) {
			m.MaxFailFastMs = 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseContractYAML([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			m := defaultModule("api")
			tt.edit(m)
			want := &memcontractv1.Contract{Version: "v1", Modules: []*memcontractv1.ModuleContract{m}}
			if !proto.Equal(got, want) {
				t.Errorf("ParseContractYAML() diff (-want +got):\n%s", cmp.Diff(want, got, protocmp.Transform()))
			}
		})
	}
}

func TestParseContractYAMLErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"malformed", "modules: [", "malformed YAML"},
		{"unknown key", "modules: [{name: api, max_heap: 5}]", "max_heap"},
		{"wrong type", "modules: [{name: api, max_heap_mb: lots}]", "maxHeapMb"},
		{"unknown on_stuck", "modules: [{name: api, on_stuck: restart}]", "modules[0].on_stuck"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseContractYAML([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseContractYAML() error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestSelectModule(t *testing.T) {
	c := &memcontractv1.Contract{Modules: []*memcontractv1.ModuleContract{{Name: "a"}, {Name: "b"}}}
	if m, err := SelectModule(c, "b"); err != nil || m.GetName() != "b" {
		t.Errorf("SelectModule(b) = %v, %v", m, err)
	}
	t.Setenv(ModuleEnv, "a")
	if m, err := SelectModule(c, ""); err != nil || m.GetName() != "a" {
		t.Errorf("SelectModule() with $%s=a = %v, %v", ModuleEnv, m, err)
	}
	t.Setenv(ModuleEnv, "")
	if _, err := SelectModule(c, ""); err == nil {
		t.Error("SelectModule() of two modules without a name succeeded")
	}
	if _, err := SelectModule(c, "c"); err == nil {
		t.Error("SelectModule(c) succeeded")
	}
}

func TestCoreMatcher(t *testing.T) {
	m := NewCoreMatcher([]string{"/inventory.v1.InventoryService/Ping", "/admin.*/Get?", "/x.Y/[!a]*"})
	tests := []struct {
		method string
		want   bool
	}{
		{"/grpc.health.v1.Health/Check", true},
		{"/grpc.health.v1.Health/Watch", true},
		{"/inventory.v1.InventoryService/Ping", true},
		{"/inventory.v1.InventoryService/GetItem", false},
		{"/admin.v1.Admin/GetX", true},
		{"/admin.v1.Admin/Get", false},
		{"/x.Y/bcd", true},
		{"/x.Y/abc", false},
	}
	for _, tt := range tests {
		if got := m.Match(tt.method); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.method, got, tt.want)
		}
	}
}

func TestLadder(t *testing.T) {
	l := NewLadder(DefaultModule("api"))
	tests := []struct {
		heap, rate float64
		want       Level
	}{
		{0.5, 0, LevelNormal},
		{0.85, 0, LevelAlert}, // confirm level1 = 1
		{0.96, 0, LevelAlert},
		{0.96, 0, LevelDegraded}, // two samples above level 2
		{0.96, 0, LevelCritical}, // three samples above level 3
		{0.5, 0, LevelCritical},  // recover_after = 5
		{0.5, 0, LevelCritical},
		{0.5, 0, LevelCritical},
		{0.5, 0, LevelCritical},
		{0.5, 0, LevelDegraded},   // one level at a time
		{0.1, 2.5, LevelDegraded}, // level 3 needs three fresh samples
		{0.1, 2.5, LevelDegraded},
		{0.1, 2.5, LevelCritical},
	}
	for i, tt := range tests {
		if got := l.Observe(tt.heap, tt.rate); got != tt.want {
			t.Fatalf("sample %d: Observe(%v, %v) = %v, want %v", i, tt.heap, tt.rate, got, tt.want)
		}
	}
}

func TestParseContractYAMLRejectsUnknownOrcaUtilization(t *testing.T) {
	_, err := ParseContractYAML([]byte("modules: [{name: a}, {name: b, orca: {application_utilization: cpu}}]"))
	if err == nil || !strings.Contains(err.Error(), `modules[1].orca.application_utilization: expected memory or none, got "cpu"`) {
		t.Fatalf("ParseContractYAML() error = %v, want one naming modules[1].orca.application_utilization", err)
	}
}

func TestParseContractYAMLRejectsUnknownOrcaRates(t *testing.T) {
	_, err := ParseContractYAML([]byte("modules: [{name: a, orca: {rates: qps}}]"))
	if err == nil || !strings.Contains(err.Error(), `modules[0].orca.rates: expected calls or headroom, got "qps"`) {
		t.Fatalf("ParseContractYAML() error = %v", err)
	}
}
