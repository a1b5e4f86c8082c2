package memcontract

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// healthMethods is the glob of the gRPC health service; it is always core.
const healthMethods = "/grpc.health.v1.Health/*"

// outOfBandMethods are the globs of the pressure services (fleet.go); like
// health they are always core, so balancers and `memcontract top` keep
// reading a process at level 3.
var outOfBandMethods = []string{"/xds.service.orca.v3.OpenRcaService/*", "/memcontract.v1.MemoryPressureService/*"}

// reflectionMethods are the globs of server reflection (v1 and v1alpha):
// always core, so grpcurl and ghz, which ask it for a method's descriptors
// before every call, keep working when an operator needs them most.
var reflectionMethods = []string{"/grpc.reflection.v1.ServerReflection/*", "/grpc.reflection.v1alpha.ServerReflection/*"}

// ModuleEnv names the environment variable that selects the module in force
// when none is given.
const ModuleEnv = "MEMCONTRACT_MODULE"

// Contract is a validated memory_contract.yaml: its version, its modules
// with every default filled in, and the module in force.
type Contract struct {
	// Path names the file the contract was read from.
	Path string
	// Version is sent to peers as x-memory-contract ("v1" by default).
	Version string
	// Modules are the modules of the file, in file order.
	Modules []*memcontractv1.ModuleContract
	// Module is the module in force (one of Modules).
	Module *memcontractv1.ModuleContract
}

// Proto returns the contract as a memcontract.v1.Contract message.
func (c *Contract) Proto() *memcontractv1.Contract {
	return &memcontractv1.Contract{Version: c.Version, Modules: c.Modules}
}

// ContractOption configures LoadContract and ParseContractYAML.
type ContractOption func(*contractOptions)

type contractOptions struct {
	module string
}

// WithModule selects the module in force by name. Without it the module is
// the one named by $MEMCONTRACT_MODULE, else the only module of the file.
func WithModule(name string) ContractOption {
	return func(o *contractOptions) { o.module = name }
}

// LoadContract reads and validates a contract file with exactly the rules of
// Python's Contract.load: any problem is a *ContractError naming the file,
// the line and the field, with the message the Python loader gives.
func LoadContract(path string, opts ...ContractOption) (*Contract, error) {
	b, err := readContractFile(path)
	if err != nil {
		return nil, err
	}
	return ParseContractYAML(path, b, opts...)
}

// ParseContractYAML validates contract YAML text; name only names it in errors
// (Python's from_yaml uses "<string>").
func ParseContractYAML(name string, text []byte, opts ...ContractOption) (c *Contract, err error) {
	var o contractOptions
	for _, opt := range opts {
		opt(&o)
	}
	text, err = decodeText(text, name)
	if err != nil {
		return nil, err
	}
	root, err := composeYAML(text, name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			ce, ok := r.(*ContractError)
			if !ok {
				panic(r)
			}
			c, err = nil, ce
		}
	}()
	w := &walker{path: name}
	if root == nil || root.Kind == yaml.ScalarNode && root.Value == "" && isPlain(root) && root.Style&yaml.TaggedStyle == 0 {
		w.fail("the file is empty; expected a mapping with a 'modules' list", nil, "")
	}
	c = &Contract{Path: name}
	modulesKey := parseRoot(w, root, c)
	c.Module = selectModule(w, c.Modules, modulesKey, o.module)
	return c, nil
}

// DefaultModule returns a module contract named name with every field at
// its default, as Python's ModuleContract(name=...).
func DefaultModule(name string) *memcontractv1.ModuleContract {
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

// --- the schema: the Go twin of the "YAML schema" part of Python's contract.py -------------

var (
	versionRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)
	// "<5", "<=5", "5", "<2.5": the forms a pause objective may take.
	pauseObjectiveRE = regexp.MustCompile(`^ *(?:<=?)? *[0-9]+(?:\.[0-9]+)? *$`)
)

// maxMB keeps a budget in bytes below 2**64 (capacity_bytes is a uint64).
const maxMB = float64(1 << 44)

var (
	rootKeys   = []string{"version", "modules"}
	ladderKeys = []string{"heap", "alloc_rate", "confirm", "recover_after"}
	levelKeys  = []string{"level1", "level2", "level3"}
	orcaKeys   = []string{"application_utilization", "rates"}
)

// moduleField is one key of a module: its YAML name and the parser that
// checks its value and stores it in the message.
type moduleField struct {
	key   string
	parse func(w *walker, n *yaml.Node, field string, m *memcontractv1.ModuleContract)
}

// moduleFields is the module schema, in the order of Python's
// ModuleContract. To add a field: add it to the proto (ModuleContract) and
// regenerate, add one entry here, and give its default in DefaultModule.
var moduleFields = []moduleField{
	{"name", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		m.Name = w.str(n, f, "a string")
		if strings.TrimSpace(m.Name) == "" {
			w.fail("must be a non-empty string", n, f)
		}
	}},
	{"max_heap_mb", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		m.MaxHeapMb = w.number(n, f, numberRange{above: 0, atMost: math.Inf(1), below: maxMB})
	}},
	{"alloc_rate_mb_per_sec", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		m.AllocRateMbPerSec = w.number(n, f, numberRange{above: 0, atMost: math.Inf(1), below: maxMB})
	}},
	{"gc_trigger_ratio", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		m.GcTriggerRatio = w.number(n, f, numberRange{above: 0, atMost: 1, below: math.Inf(1)})
	}},
	{"required_gc_pauses_ms", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		v := w.str(n, f, `a string such as "<5" (milliseconds)`)
		ms, err := strconv.ParseFloat(strings.TrimLeft(v, "<= "), 64)
		if !pauseObjectiveRE.MatchString(v) || err != nil || ms <= 0 {
			w.fail(`expected a pause objective such as "<5" or "<=2.5", got `+pyRepr(v), n, f)
		}
		m.RequiredGcPausesMs = v
	}},
	{"core_methods", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		globs := w.strs(n, f)
		for i, g := range globs {
			if !strings.HasPrefix(g, "/") {
				w.fail(`must be a full method glob starting with "/", got `+pyRepr(g), n.Content[i], joinField(f, i))
			}
		}
		m.CoreMethods = globs
	}},
	{"sample_interval_ms", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		m.SampleIntervalMs = uint32(w.integer(n, f, 1, uint32Max))
	}},
	{"ladder", parseLadder},
	{"noncritical_loggers", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		names := w.strs(n, f)
		for i, name := range names {
			if name == "" {
				w.fail("logger names must be non-empty", n.Content[i], joinField(f, i))
			}
		}
		m.NoncriticalLoggers = names
	}},
	{"retry_pushback_ms", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		m.RetryPushbackMs = uint32(w.integer(n, f, 0, uint32Max))
	}},
	{"dry_run", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		m.DryRun = w.boolean(n, f)
	}},
	{"on_stuck", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		m.OnStuck = w.choice(n, f, []string{OnStuckHalfOpen, OnStuckRecycle})
	}},
	{"orca", parseOrca},
	{"max_fail_fast_ms", func(w *walker, n *yaml.Node, f string, m *memcontractv1.ModuleContract) {
		m.MaxFailFastMs = uint32(w.integer(n, f, 0, uint32Max))
	}},
}

func moduleKeys() []string {
	keys := make([]string, len(moduleFields))
	for i, mf := range moduleFields {
		keys[i] = mf.key
	}
	return keys
}

// parseRoot fills c's version and modules and returns the `modules:` key
// node (selection errors point at it).
func parseRoot(w *walker, root *yaml.Node, c *Contract) *yaml.Node {
	if root.Kind != yaml.MappingNode {
		w.fail("the top level must be a mapping with 'version' and 'modules'", root, "")
	}
	e := w.mapping(root, "", rootKeys)
	c.Version = "v1"
	if n, ok := e.get("version"); ok {
		c.Version = w.str(n, "version", `a string such as "v1.2" (quote numbers)`)
		if !versionRE.MatchString(c.Version) {
			w.fail("must match [A-Za-z0-9._-]{1,32}, got "+pyRepr(c.Version), n, "version")
		}
	}
	modulesNode, ok := e.get("modules")
	if !ok {
		w.fail("missing required key 'modules'", root, "modules")
	}
	items := w.sequence(modulesNode, "modules")
	if len(items) == 0 {
		w.fail("must list at least one module", modulesNode, "modules")
	}
	nameNodes := make([]*yaml.Node, len(items))
	for i, item := range items {
		var m *memcontractv1.ModuleContract
		m, nameNodes[i] = parseModule(w, item, fmt.Sprintf("modules[%d]", i))
		c.Modules = append(c.Modules, m)
	}
	first := map[string]*yaml.Node{}
	for i, m := range c.Modules {
		if prev, dup := first[m.Name]; dup {
			w.fail(fmt.Sprintf("duplicate module name %s (first at line %d)", pyRepr(m.Name), prev.Line), nameNodes[i], fmt.Sprintf("modules[%d].name", i))
		}
		first[m.Name] = nameNodes[i]
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i+1] == modulesNode {
			return root.Content[i]
		}
	}
	return root
}

func parseModule(w *walker, n *yaml.Node, field string) (*memcontractv1.ModuleContract, *yaml.Node) {
	e := w.mapping(n, field, moduleKeys())
	nameNode, ok := e.get("name")
	if !ok {
		w.fail("missing required key 'name'", n, joinField(field, "name"))
	}
	m := DefaultModule("")
	for _, key := range e.keys {
		for _, mf := range moduleFields {
			if mf.key == key {
				mf.parse(w, e.nodes[key], joinField(field, key), m)
			}
		}
	}
	return m, nameNode
}

func parseLadder(w *walker, n *yaml.Node, field string, m *memcontractv1.ModuleContract) {
	e := w.mapping(n, field, ladderKeys)
	l := m.Ladder
	if v, ok := e.get("heap"); ok {
		parseThresholds(w, v, joinField(field, "heap"), l.Heap, 1)
	}
	if v, ok := e.get("alloc_rate"); ok {
		parseThresholds(w, v, joinField(field, "alloc_rate"), l.AllocRate, math.Inf(1))
	}
	if v, ok := e.get("confirm"); ok {
		parseCounts(w, v, joinField(field, "confirm"), l.Confirm)
	}
	if v, ok := e.get("recover_after"); ok {
		l.RecoverAfter = uint32(w.integer(v, joinField(field, "recover_after"), 1, uint32Max))
	}
}

// parseOrca reads the orca options (Python's _orca): a key left out keeps
// its default.
func parseOrca(w *walker, n *yaml.Node, field string, m *memcontractv1.ModuleContract) {
	e := w.mapping(n, field, orcaKeys)
	o := m.Orca
	if v, ok := e.get("application_utilization"); ok {
		o.ApplicationUtilization = w.choice(v, joinField(field, "application_utilization"), []string{UtilizationMemory, UtilizationNone})
	}
	if v, ok := e.get("rates"); ok {
		o.Rates = w.choice(v, joinField(field, "rates"), []string{RatesCalls, RatesHeadroom})
	}
}

// parseThresholds reads a partial map (a missing level keeps its default);
// the result must increase.
func parseThresholds(w *walker, n *yaml.Node, field string, t *memcontractv1.LevelThresholds, atMost float64) {
	e := w.mapping(n, field, levelKeys)
	values := []float64{t.Level1, t.Level2, t.Level3}
	for i, key := range levelKeys {
		if v, ok := e.get(key); ok {
			values[i] = w.number(v, joinField(field, key), numberRange{above: 0, atMost: atMost, below: math.Inf(1)})
		}
	}
	for i := 1; i < 3; i++ {
		if values[i] > values[i-1] {
			continue
		}
		msg := fmt.Sprintf("level thresholds must increase (level1 < level2 < level3), got %s, %s, %s",
			pyG(values[0]), pyG(values[1]), pyG(values[2]))
		// Blame the level the user wrote, preferring the higher one.
		for _, key := range []string{levelKeys[i], levelKeys[i-1]} {
			if v, ok := e.get(key); ok {
				w.fail(msg, v, joinField(field, key))
			}
		}
		w.fail(msg, n, field)
	}
	t.Level1, t.Level2, t.Level3 = values[0], values[1], values[2]
}

func parseCounts(w *walker, n *yaml.Node, field string, c *memcontractv1.LevelCounts) {
	e := w.mapping(n, field, levelKeys)
	dst := []*uint32{&c.Level1, &c.Level2, &c.Level3}
	for i, key := range levelKeys {
		if v, ok := e.get(key); ok {
			*dst[i] = uint32(w.integer(v, joinField(field, key), 1, uint32Max))
		}
	}
}

// selectModule returns the module in force: requested, else
// $MEMCONTRACT_MODULE, else the only one.
func selectModule(w *walker, mods []*memcontractv1.ModuleContract, modulesKey *yaml.Node, requested string) *memcontractv1.ModuleContract {
	source := ""
	if env := os.Getenv(ModuleEnv); requested == "" && env != "" {
		requested, source = env, " (from $"+ModuleEnv+")"
	}
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.GetName()
	}
	if requested == "" {
		if len(mods) == 1 {
			return mods[0]
		}
		w.fail(fmt.Sprintf("the file declares %d modules (%s); select one with module=NAME, --module NAME or $%s",
			len(names), strings.Join(names, ", "), ModuleEnv), modulesKey, "modules")
	}
	for _, m := range mods {
		if m.GetName() == requested {
			return m
		}
	}
	w.fail(fmt.Sprintf("no module named %s%s%s; modules: %s", pyRepr(requested), source,
		didYouMean(requested, names), strings.Join(names, ", ")), modulesKey, "modules")
	return nil
}

// coreMatcher reports whether a full method name ("/pkg.Service/Method")
// matches one of the globs, the health service, the pressure services or
// server reflection (always core). Globs follow Python's fnmatch: "*" matches any run of
// characters including "/", "?" one character, "[seq]" and "[!seq]"
// character classes.
type coreMatcher struct {
	re *regexp.Regexp
}

// newCoreMatcher compiles the core-method globs of a module.
func newCoreMatcher(globs []string) *coreMatcher {
	set := map[string]bool{healthMethods: true}
	for _, g := range append(outOfBandMethods, reflectionMethods...) {
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
	return &coreMatcher{re: regexp.MustCompile(`^(?s:` + strings.Join(parts, "|") + `)$`)}
}

// Match reports whether method is core.
func (m *coreMatcher) Match(method string) bool { return m.re.MatchString(method) }

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
