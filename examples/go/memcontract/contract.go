package memcontract

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	memcontractv1 "github.com/memcontract/memcontract/examples/go/gen/memcontract/v1"
)

// HealthMethods is the glob of the gRPC health service; it is always core.
const HealthMethods = "/grpc.health.v1.Health/*"

// OutOfBandMethods are the globs of the pressure services (fleet.go); like
// health they are always core, so balancers and `memcontract top` keep
// reading a process at level 3.
var OutOfBandMethods = []string{"/xds.service.orca.v3.OpenRcaService/*", "/memcontract.v1.MemoryPressureService/*"}

// ModuleEnv names the environment variable that selects the module in force
// when none is given.
const ModuleEnv = "MEMCONTRACT_MODULE"

// OnStuck values: what level 3 does when usage stops falling while nothing
// grows. OnStuckHalfOpen (the default) admits a growing fraction of non-core
// calls; OnStuckRecycle asks the process to drain and exit for a restart.
const (
	OnStuckHalfOpen = "half_open"
	OnStuckRecycle  = "recycle"
)

// maxContractSize is the largest contract file accepted, in bytes.
const maxContractSize = 1 << 20

// LoadContract reads a memory_contract.yaml file into a Contract message with
// the defaults of the Python side applied (see ParseContractYAML).
func LoadContract(path string) (*memcontractv1.Contract, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("memcontract: %w", err)
	}
	if st.Size() > maxContractSize {
		return nil, fmt.Errorf("memcontract: %s: file larger than 1 MiB", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("memcontract: %w", err)
	}
	c, err := ParseContractYAML(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseContractYAML decodes contract YAML (YAML to JSON, then protojson, so
// unknown keys are errors) and fills in every field the YAML leaves out with
// the Python side's default. Defaults apply to absent keys only: an explicit
// `core_methods: []` stays empty, as in Python.
func ParseContractYAML(b []byte) (*memcontractv1.Contract, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("memcontract: malformed YAML: %w", err)
	}
	var raw struct {
		Modules []map[string]json.RawMessage `json:"modules"`
	}
	// Presence of keys only; protojson below reports type errors.
	_ = json.Unmarshal(j, &raw)
	c := &memcontractv1.Contract{}
	if err := protojson.Unmarshal(j, c); err != nil {
		return nil, fmt.Errorf("memcontract: %w", err)
	}
	if c.GetVersion() == "" {
		c.Version = "v1"
	}
	for i, m := range c.GetModules() {
		var present map[string]json.RawMessage
		if i < len(raw.Modules) {
			present = raw.Modules[i]
		}
		if err := checkOrca(m, present, i); err != nil {
			return nil, err
		}
		applyModuleDefaults(m, present)
		if s := m.GetOnStuck(); s != OnStuckHalfOpen && s != OnStuckRecycle {
			return nil, fmt.Errorf("memcontract: modules[%d].on_stuck: expected one of %s, %s, got %q", i, OnStuckHalfOpen, OnStuckRecycle, s)
		}
	}
	return c, nil
}

// has reports whether the JSON object holds key in its proto or JSON
// (lowerCamelCase) spelling.
func has(obj map[string]json.RawMessage, key string) bool {
	if obj == nil {
		return false
	}
	if _, ok := obj[key]; ok {
		return true
	}
	_, ok := obj[jsonName(key)]
	return ok
}

func jsonName(key string) string {
	parts := strings.Split(key, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

func sub(obj map[string]json.RawMessage, key string) map[string]json.RawMessage {
	if obj == nil {
		return nil
	}
	v, ok := obj[key]
	if !ok {
		v, ok = obj[jsonName(key)]
	}
	if !ok {
		return nil
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(v, &m)
	return m
}

func applyModuleDefaults(m *memcontractv1.ModuleContract, obj map[string]json.RawMessage) {
	if !has(obj, "max_heap_mb") {
		m.MaxHeapMb = 1800
	}
	if !has(obj, "alloc_rate_mb_per_sec") {
		m.AllocRateMbPerSec = 12.5
	}
	if !has(obj, "gc_trigger_ratio") {
		m.GcTriggerRatio = 0.75
	}
	if !has(obj, "required_gc_pauses_ms") {
		m.RequiredGcPausesMs = "<5"
	}
	if !has(obj, "core_methods") {
		m.CoreMethods = []string{HealthMethods}
	}
	if !has(obj, "sample_interval_ms") {
		m.SampleIntervalMs = 500
	}
	if !has(obj, "retry_pushback_ms") {
		m.RetryPushbackMs = 1000
	}
	if !has(obj, "on_stuck") {
		m.OnStuck = OnStuckHalfOpen
	}
	if m.Orca == nil {
		m.Orca = &memcontractv1.OrcaOptions{}
	}
	if !has(sub(obj, "orca"), "application_utilization") {
		m.Orca.ApplicationUtilization = UtilizationMemory
	}
	if !has(sub(obj, "orca"), "rates") {
		m.Orca.Rates = RatesCalls
	}
	if !has(obj, "max_fail_fast_ms") {
		m.MaxFailFastMs = 30000
	}
	if m.NoncriticalLoggers == nil {
		m.NoncriticalLoggers = []string{}
	}
	if m.Ladder == nil {
		m.Ladder = &memcontractv1.Ladder{}
	}
	lobj := sub(obj, "ladder")
	l := m.Ladder
	if l.Heap == nil {
		l.Heap = &memcontractv1.LevelThresholds{}
	}
	thresholdDefaults(l.Heap, sub(lobj, "heap"), 0.80, 0.90, 0.95)
	if l.AllocRate == nil {
		l.AllocRate = &memcontractv1.LevelThresholds{}
	}
	thresholdDefaults(l.AllocRate, sub(lobj, "alloc_rate"), 1.0, 1.5, 2.0)
	if l.Confirm == nil {
		l.Confirm = &memcontractv1.LevelCounts{}
	}
	cobj := sub(lobj, "confirm")
	if !has(cobj, "level1") {
		l.Confirm.Level1 = 1
	}
	if !has(cobj, "level2") {
		l.Confirm.Level2 = 2
	}
	if !has(cobj, "level3") {
		l.Confirm.Level3 = 3
	}
	if !has(lobj, "recover_after") {
		l.RecoverAfter = 5
	}
}

// checkOrca validates the modules[i].orca fields the YAML sets, as in Python:
// application_utilization is "memory" or "none", rates "calls" or
// "normalized".
func checkOrca(m *memcontractv1.ModuleContract, obj map[string]json.RawMessage, i int) error {
	orcaObj := sub(obj, "orca")
	fields := []struct {
		key, value string
		choices    []string
	}{
		{"application_utilization", m.GetOrca().GetApplicationUtilization(), []string{UtilizationMemory, UtilizationNone}},
		{"rates", m.GetOrca().GetRates(), []string{RatesCalls, RatesHeadroom}},
	}
	for _, f := range fields {
		if has(orcaObj, f.key) && f.value != f.choices[0] && f.value != f.choices[1] {
			return fmt.Errorf("memcontract: modules[%d].orca.%s: expected %s or %s, got %q", i, f.key, f.choices[0], f.choices[1], f.value)
		}
	}
	return nil
}

func thresholdDefaults(t *memcontractv1.LevelThresholds, obj map[string]json.RawMessage, l1, l2, l3 float64) {
	if !has(obj, "level1") {
		t.Level1 = l1
	}
	if !has(obj, "level2") {
		t.Level2 = l2
	}
	if !has(obj, "level3") {
		t.Level3 = l3
	}
}

// SelectModule returns the module in force: the one named name, else the one
// named by $MEMCONTRACT_MODULE, else the only module.
func SelectModule(c *memcontractv1.Contract, name string) (*memcontractv1.ModuleContract, error) {
	if name == "" {
		name = os.Getenv(ModuleEnv)
	}
	mods := c.GetModules()
	if name == "" {
		if len(mods) == 1 {
			return mods[0], nil
		}
		return nil, fmt.Errorf("memcontract: %d modules in the contract and none selected (set %s)", len(mods), ModuleEnv)
	}
	names := make([]string, 0, len(mods))
	for _, m := range mods {
		if m.GetName() == name {
			return m, nil
		}
		names = append(names, m.GetName())
	}
	return nil, fmt.Errorf("memcontract: no module %q in the contract (have %s)", name, strings.Join(names, ", "))
}

// DefaultModule returns a module contract named name with every field at
// its default, for processes run without a contract file.
func DefaultModule(name string) *memcontractv1.ModuleContract {
	m := &memcontractv1.ModuleContract{Name: name}
	applyModuleDefaults(m, nil)
	return m
}

// CoreMatcher reports whether a full method name ("/pkg.Service/Method")
// matches one of the globs, or the health service (always core). Globs
// follow Python's fnmatch: "*" matches any run of characters including "/",
// "?" one character, "[seq]" and "[!seq]" character classes.
type CoreMatcher struct {
	re *regexp.Regexp
}

// NewCoreMatcher compiles the core-method globs of a module.
func NewCoreMatcher(globs []string) *CoreMatcher {
	set := map[string]bool{HealthMethods: true}
	for _, g := range OutOfBandMethods {
		set[g] = true
	}
	for _, g := range globs {
		set[g] = true
	}
	all := make([]string, 0, len(set))
	for g := range set {
		all = append(all, g)
	}
	sort.Strings(all)
	parts := make([]string, len(all))
	for i, g := range all {
		parts[i] = "(?:" + globToRegexp(g) + ")"
	}
	return &CoreMatcher{re: regexp.MustCompile(`^(?s:` + strings.Join(parts, "|") + `)$`)}
}

// Match reports whether method is core.
func (m *CoreMatcher) Match(method string) bool { return m.re.MatchString(method) }

// globToRegexp translates a glob like Python's fnmatch.translate.
func globToRegexp(g string) string {
	var b strings.Builder
	for i := 0; i < len(g); i++ {
		c := g[i]
		switch c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			j := i + 1
			if j < len(g) && g[j] == '!' {
				j++
			}
			if j < len(g) && g[j] == ']' {
				j++
			}
			for j < len(g) && g[j] != ']' {
				j++
			}
			if j >= len(g) {
				b.WriteString(`\[`)
				continue
			}
			body := g[i+1 : j]
			i = j
			body = strings.ReplaceAll(body, `\`, `\\`)
			if strings.HasPrefix(body, "!") {
				body = "^" + body[1:]
			} else if strings.HasPrefix(body, "^") {
				body = `\` + body
			}
			b.WriteString("[" + body + "]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}
