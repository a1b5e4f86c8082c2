package memcontract

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// defaultModule is a module with every field at the Python side's default.
func defaultModule(name string) *memcontractv1.ModuleContract {
	return &memcontractv1.ModuleContract{
		Name:               name,
		MaxHeapMb:          1800,
		AllocRateMbPerSec:  12.5,
		GcTriggerRatio:     0.75,
		RequiredGcPausesMs: "<5",
		CoreMethods:        []string{healthMethods},
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
		Orca:               &memcontractv1.OrcaOptions{ApplicationUtilization: UtilizationMemory, Rates: RatesHeadroom},
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
			got, err := LoadContract(filepath.Join("../../examples/contracts", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.Proto(), protocmp.Transform()); diff != "" {
				t.Errorf("LoadContract(%s) diff (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

// corpusCase is one entry of tests/vectors/contracts/cases.json: what
// Python's loader gives for a corpus file, which Go must give too.
type corpusCase struct {
	Module    *string         `json:"module"`
	GoMessage string          `json:"go_message"`
	Contract  json.RawMessage `json:"contract"`
	Error     *struct {
		Line    *int    `json:"line"`
		Field   *string `json:"field"`
		Message string  `json:"message"`
	} `json:"error"`
}

const corpusDir = "../../tests/vectors/contracts"

// TestSharedContractCorpus loads every contract of the shared corpus and
// wants what Python's loader gives: an equal message, or an error with the
// same line, field and message.
func TestSharedContractCorpus(t *testing.T) {
	t.Setenv(ModuleEnv, "")
	b, err := os.ReadFile(filepath.Join(corpusDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]corpusCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.yaml"))
	if len(files) != len(cases) || len(cases) < 50 {
		t.Fatalf("%d corpus files, %d cases: run tools/gencontracts.py", len(files), len(cases))
	}
	for name, tc := range cases {
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			var opts []ContractOption
			if tc.Module != nil {
				opts = append(opts, WithModule(*tc.Module))
			}
			path := filepath.Join(corpusDir, name)
			got, err := LoadContract(path, opts...)
			if tc.Error == nil {
				if err != nil {
					t.Fatalf("LoadContract() error = %v, want a contract", err)
				}
				want := &memcontractv1.Contract{}
				if err := protojson.Unmarshal(tc.Contract, want); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got.Proto(), protocmp.Transform()); diff != "" {
					t.Errorf("LoadContract() diff (-python +go):\n%s", diff)
				}
				return
			}
			var ce *ContractError
			if !errors.As(err, &ce) {
				t.Fatalf("LoadContract() = %v, %v; want a *ContractError", got, err)
			}
			want := ContractError{Path: path, Message: tc.Error.Message}
			if tc.Error.Line != nil {
				want.Line = *tc.Error.Line
			}
			if tc.Error.Field != nil {
				want.Field = *tc.Error.Field
			}
			gotErr := *ce
			if tc.GoMessage == "prefix" {
				// A YAML syntax error: each parser words it (and marks its
				// line) its own way; both name no field.
				if !strings.HasPrefix(gotErr.Message, "invalid YAML: ") || gotErr.Line == 0 {
					t.Errorf("got %s, want a line and the prefix \"invalid YAML: \"", ce)
				}
				gotErr.Message, gotErr.Line = want.Message, want.Line
			}
			gotErr.Err = nil // a cause only when a file cannot be read: see TestContractErrorUnwraps
			if gotErr != want {
				t.Errorf("LoadContract() error\n got %s\nwant %s", ce, &want)
			}
		})
	}
}

// TestContractErrorUnwraps: a file that cannot be read is a ContractError in
// Python's words that still unwraps to the os error; an invalid file has no
// cause.
func TestContractErrorUnwraps(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := LoadContract(missing)
	var ce *ContractError
	if !errors.As(err, &ce) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadContract(missing) = %v; want a *ContractError that is fs.ErrNotExist", err)
	}
	if want := missing + ": cannot read file: No such file or directory"; err.Error() != want {
		t.Errorf("error text %q, want %q", err, want)
	}
	_, err = ParseContractYAML("bad.yaml", []byte("modules: 3"))
	if !errors.As(err, &ce) || errors.Unwrap(err) != nil {
		t.Errorf("ParseContractYAML(invalid) = %v (cause %v); want a *ContractError without a cause", err, errors.Unwrap(err))
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
			m.CoreMethods = []string{}
		}},
		{"orca utilization off", "modules: [{name: api, orca: {application_utilization: none, rates: calls}}]", func(m *memcontractv1.ModuleContract) {
			m.Orca.ApplicationUtilization = UtilizationNone
			m.Orca.Rates = RatesCalls
		}},
		{"orca rates alone", "modules: [{name: api, orca: {rates: calls}}]", func(m *memcontractv1.ModuleContract) {
			m.Orca.Rates = RatesCalls
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
			got, err := ParseContractYAML("c.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			m := defaultModule("api")
			tt.edit(m)
			want := &memcontractv1.Contract{Version: "v1", Modules: []*memcontractv1.ModuleContract{m}}
			if diff := cmp.Diff(want, got.Proto(), protocmp.Transform()); diff != "" {
				t.Errorf("ParseContractYAML() diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestContractErrorFormat(t *testing.T) {
	_, err := ParseContractYAML("c.yaml", []byte("modules:\n  - name: api\n    max_heap_mb: -5\n"))
	if got, want := fmt.Sprint(err), "c.yaml:3: modules[0].max_heap_mb: must be greater than 0, got -5"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	_, err = LoadContract(filepath.Join(t.TempDir(), "absent.yaml"))
	if got, want := fmt.Sprint(err), "absent.yaml: cannot read file: No such file or directory"; !strings.HasSuffix(got, want) {
		t.Errorf("error = %q, want it to end with %q", got, want)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, make([]byte, 1<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadContract(big); err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("LoadContract(2 MiB) error = %v", err)
	}
}

func TestSelectModule(t *testing.T) {
	text := []byte("modules: [{name: a}, {name: b}]")
	if c, err := ParseContractYAML("c.yaml", text, WithModule("b")); err != nil || c.Module.GetName() != "b" {
		t.Errorf("WithModule(b) = %v, %v", c, err)
	}
	t.Setenv(ModuleEnv, "a")
	if c, err := ParseContractYAML("c.yaml", text); err != nil || c.Module.GetName() != "a" {
		t.Errorf("$%s=a = %v, %v", ModuleEnv, c, err)
	}
	t.Setenv(ModuleEnv, "c")
	if _, err := ParseContractYAML("c.yaml", text); err == nil || !strings.Contains(err.Error(), "(from $MEMCONTRACT_MODULE)") {
		t.Errorf("$%s=c error = %v", ModuleEnv, err)
	}
}

func TestDidYouMeanMatchesDifflib(t *testing.T) {
	// Expected values from Python's difflib.get_close_matches(word, choices, n=1).
	keys := []string{"name", "max_heap_mb", "alloc_rate_mb_per_sec", "gc_trigger_ratio", "required_gc_pauses_ms",
		"core_methods", "sample_interval_ms", "ladder", "noncritical_loggers", "retry_pushback_ms", "dry_run"}
	tests := map[string]string{
		"maxHeapMb": " (did you mean 'max_heap_mb'?)", "dryrun": " (did you mean 'dry_run'?)",
		"ladders": " (did you mean 'ladder'?)", "zzz": "", "retry_pushback": " (did you mean 'retry_pushback_ms'?)",
	}
	for word, want := range tests {
		if got := didYouMean(word, keys); got != want {
			t.Errorf("didYouMean(%q) = %q, want %q", word, got, want)
		}
	}
}

func TestCoreMatcher(t *testing.T) {
	m := newCoreMatcher([]string{"/inventory.v1.InventoryService/Ping", "/admin.*/Get?", "/x.Y/[!a]*"})
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
		{"/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics", true},
		{"/memcontract.v1.MemoryPressureService/WatchPressure", true},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true},
		{"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", true},
	}
	for _, tt := range tests {
		if got := m.Match(tt.method); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.method, got, tt.want)
		}
	}
}

// TestWalkerChoice pins the messages of Python's _choice (contract.py), the
// parser of enumerated fields such as on_stuck.
func TestWalkerChoice(t *testing.T) {
	choices := []string{OnStuckHalfOpen, OnStuckRecycle}
	tests := map[string]string{
		"recycle": "",
		"recylce": "c.yaml:1: on_stuck: expected one of half_open, recycle, got 'recylce' (did you mean 'recycle'?)",
		"restart": "c.yaml:1: on_stuck: expected one of half_open, recycle, got 'restart'",
		"[a]":     "c.yaml:1: on_stuck: expected one of half_open, recycle, got a list",
		"true":    "c.yaml:1: on_stuck: expected one of half_open, recycle, got a boolean (true)",
	}
	for text, want := range tests {
		root, err := composeYAML([]byte("on_stuck: "+text), "c.yaml")
		if err != nil {
			t.Fatal(err)
		}
		got := func() (msg string) {
			defer func() {
				if r := recover(); r != nil {
					msg = r.(*ContractError).Error()
				}
			}()
			(&walker{path: "c.yaml"}).choice(root.Content[1], "on_stuck", choices)
			return ""
		}()
		if got != want {
			t.Errorf("choice(%s) = %q, want %q", text, got, want)
		}
	}
}
