package gateway

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The command line is GNU-style, as the Python gateway's argparse parsed it:
// --flag value, --flag=value, bare booleans, unique prefixes of a long
// flag, flags in any order. Go's flag package does none of the first three
// the same way, so the table below is parsed by hand; it also names the YAML
// keys (the long names with underscores) and writes --help.

// option is one flag and its YAML key.
type option struct {
	flag    string // long name without "--"
	key     string // YAML key
	metavar string // "" for a boolean
	help    string
	// field returns the Options field the option sets: *string, *[]string,
	// *int, *float64 or *bool.
	field func(o *Options) any
	// ignored options are accepted with a warning (the Python gateway's
	// workers and reflection_timeout_s mean nothing here).
	ignored string
}

// ignoredValues holds what ignored options were given, so that they are
// still type-checked like the others.
type ignoredValues struct {
	workers            int
	reflectionTimeoutS float64
}

var ignoredSink ignoredValues

var options = []option{
	{flag: "listen", key: "listen", metavar: "HOST:PORT", help: "address to serve on (port 0: any free port)",
		field: func(o *Options) any { return &o.Listen }},
	{flag: "upstream", key: "upstreams", metavar: "HOST:PORT",
		help:  "an upstream server (repeat for several; calls go to the less pressured)",
		field: func(o *Options) any { return &o.Upstreams }},
	{flag: "contract", key: "contract", metavar: "FILE", help: "the gateway's own memory contract",
		field: func(o *Options) any { return &o.Contract }},
	{flag: "module", key: "module", metavar: "NAME", help: "module of --contract in force (default: the only one)",
		field: func(o *Options) any { return &o.Module }},
	{flag: "core-method", key: "core_methods", metavar: "GLOB",
		help: "method glob never shed, e.g. '/inventory.v1.InventoryService/Ping' (repeatable; " +
			"health always is; the contract's core_methods count too)",
		field: func(o *Options) any { return &o.CoreMethods }},
	{flag: "descriptor-set", key: "descriptor_sets", metavar: "FILE",
		help:  "FileDescriptorSet (protoc -o) the gateway answers server reflection from (repeatable)",
		field: func(o *Options) any { return &o.DescriptorSets }},
	{flag: "grace-s", key: "grace_s", metavar: "SECONDS",
		help:  "time in-flight calls get after SIGTERM before they are cut (default 10)",
		field: func(o *Options) any { return &o.GraceS }},
	{flag: "drain-delay-s", key: "drain_delay_s", metavar: "SECONDS",
		help:  "after SIGTERM, keep taking calls this long while health says NOT_SERVING (default 0.5)",
		field: func(o *Options) any { return &o.DrainDelayS }},
	{flag: "max-request-bytes", key: "max_request_bytes", metavar: "BYTES",
		help:  "largest client message forwarded (default 4194304)",
		field: func(o *Options) any { return &o.MaxRequestBytes }},
	{flag: "max-response-bytes", key: "max_response_bytes", metavar: "BYTES",
		help:  "largest upstream message forwarded (default 4194304)",
		field: func(o *Options) any { return &o.MaxResponseBytes }},
	{flag: "max-metadata-bytes", key: "max_metadata_bytes", metavar: "BYTES",
		help:  "largest header or trailer list accepted each way (default 1048576)",
		field: func(o *Options) any { return &o.MaxMetadataBytes }},
	{flag: "trust-network", key: "trust_networks", metavar: "CIDR",
		help: "clients whose x-memory-* headers are forwarded (repeatable); with no " +
			"--trust-network or --trust-identity every client is trusted; others' are stripped",
		field: func(o *Options) any { return &o.TrustNetworks }},
	{flag: "trust-identity", key: "trust_identities", metavar: "NAME",
		help:  "TLS client identity (DNS or URI SAN, or CN) trusted like --trust-network",
		field: func(o *Options) any { return &o.TrustIdentities }},
	{flag: "tls-cert", key: "tls_cert", metavar: "PEM", help: "serve TLS with this certificate",
		field: func(o *Options) any { return &o.TLSCert }},
	{flag: "tls-key", key: "tls_key", metavar: "PEM", help: "private key of --tls-cert",
		field: func(o *Options) any { return &o.TLSKey }},
	{flag: "tls-client-ca", key: "tls_client_ca", metavar: "PEM", help: "require client certificates from this CA (mTLS)",
		field: func(o *Options) any { return &o.TLSClientCA }},
	{flag: "upstream-tls", key: "upstream_tls",
		help:  "dial upstreams with TLS (implied by the other --upstream-* TLS options)",
		field: func(o *Options) any { return &o.UpstreamTLS }},
	{flag: "upstream-ca", key: "upstream_ca", metavar: "PEM", help: "CA to verify upstreams with (default: the system's)",
		field: func(o *Options) any { return &o.UpstreamCA }},
	{flag: "upstream-cert", key: "upstream_cert", metavar: "PEM", help: "client certificate for upstreams",
		field: func(o *Options) any { return &o.UpstreamCert }},
	{flag: "upstream-key", key: "upstream_key", metavar: "PEM", help: "private key of --upstream-cert",
		field: func(o *Options) any { return &o.UpstreamKey }},
	{flag: "upstream-server-name", key: "upstream_server_name", metavar: "NAME",
		help:  "name upstream certificates must carry (default: the upstream's host)",
		field: func(o *Options) any { return &o.UpstreamServerName }},
	{flag: "expose-upstream-addresses", key: "expose_upstream_addresses",
		help:  "let errors the gateway makes (an unreachable upstream) name the upstream to clients",
		field: func(o *Options) any { return &o.ExposeUpstreamAddresses }},
	{flag: "metrics-port", key: "metrics_port", metavar: "PORT",
		help:  "serve the gateway's counters in the Prometheus text format on :PORT/metrics (default 0: off)",
		field: func(o *Options) any { return &o.MetricsPort }},
	{flag: "workers", key: "workers", metavar: "N",
		help:    "accepted and ignored: one Go process uses every core",
		field:   func(*Options) any { return &ignoredSink.workers },
		ignored: "one Go process uses every core",
	},
	{flag: "reflection-timeout-s", key: "reflection_timeout_s", metavar: "SECONDS",
		help:    "accepted and ignored: methods go as raw streams whatever their arity",
		field:   func(*Options) any { return &ignoredSink.reflectionTimeoutS },
		ignored: "methods go as raw streams whatever their arity; no reflection is asked",
	},
}

const description = `A transparent gRPC proxy that forwards every method as raw bytes (metadata,
deadline, headers as they arrive, messages, trailers, status and details, cancellation) and
protects its upstreams with the memory state they report in their trailers: calls go to the
less pressured upstream, an upstream at level 3 gets no non-core call while another can take
it (when none can, the call is refused here with RESOURCE_EXHAUSTED and
grpc-retry-pushback-ms), and with --contract the gateway runs its own guard. It serves
grpc.health.v1 (NOT_SERVING while no upstream serves and from the first moment of a drain).
SIGTERM: NOT_SERVING, --drain-delay-s, then in-flight calls get --grace-s to finish; exit 0.

Every option can also be set in a YAML file (--config): keys are the long option names with
underscores (upstreams: a list; trust_networks: a list; ...); flags given win over the file.`

// usage writes --help.
func usage(w io.Writer, prog string) {
	fmt.Fprintf(w, "usage: %s --listen HOST:PORT --upstream HOST:PORT [options]\n\n%s\n\noptions:\n", prog, description)
	fmt.Fprintf(w, "  %-34s %s\n", "-h, --help", "show this help and exit")
	fmt.Fprintf(w, "  %-34s %s\n", "--config FILE", "YAML file of options (flags override it)")
	for _, opt := range options {
		name := "--" + opt.flag
		if opt.metavar != "" {
			name += " " + opt.metavar
		}
		fmt.Fprintf(w, "  %-34s %s\n", name, opt.help)
	}
}

// parsed is the outcome of the command line.
type parsed struct {
	options Options
	help    bool
}

type given struct {
	opt    *option
	values []string
}

// parseArgs reads the command line and the config file it names: the
// file's values first, then the flags given over them.
func parseArgs(args []string) (parsed, error) {
	var flags []given
	config := ""
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "-h" || arg == "--help" {
			return parsed{help: true}, nil
		}
		if !strings.HasPrefix(arg, "--") || arg == "--" {
			return parsed{}, usageErrorf("unrecognized arguments: %s", strings.Join(args[i:], " "))
		}
		name, value, hasValue := strings.Cut(arg[2:], "=")
		if name == "config" {
			v, next, err := takeValue(args, i, "config", value, hasValue)
			if err != nil {
				return parsed{}, err
			}
			config, i = v, next
			continue
		}
		opt, err := lookup(name)
		if err != nil {
			return parsed{}, err
		}
		if opt == nil {
			return parsed{}, usageErrorf("unrecognized arguments: %s", arg)
		}
		if opt.metavar == "" {
			if hasValue {
				return parsed{}, usageErrorf("argument --%s: ignored explicit argument %s", opt.flag, pyRepr(value))
			}
			flags = append(flags, given{opt: opt, values: []string{"true"}})
			continue
		}
		v, next, err := takeValue(args, i, opt.flag, value, hasValue)
		if err != nil {
			return parsed{}, err
		}
		i = next
		if n := len(flags); n > 0 && flags[n-1].opt == opt {
			flags[n-1].values = append(flags[n-1].values, v)
		} else {
			flags = append(flags, given{opt: opt, values: []string{v}})
		}
	}
	o := Defaults()
	if config != "" {
		if err := loadConfig(config, &o); err != nil {
			return parsed{}, err
		}
	}
	if err := applyFlags(&o, flags); err != nil {
		return parsed{}, err
	}
	return parsed{options: o}, nil
}

// takeValue returns the value of the flag at args[i] (given inline or as
// the next argument) and the index of the last argument used.
func takeValue(args []string, i int, flag, inline string, hasInline bool) (string, int, error) {
	if hasInline {
		return inline, i, nil
	}
	if i+1 >= len(args) || (strings.HasPrefix(args[i+1], "--") && len(args[i+1]) > 2) {
		return "", i, usageErrorf("argument --%s: expected one argument", flag)
	}
	return args[i+1], i + 1, nil
}

// lookup finds a flag by its name or a unique prefix of it (as argparse);
// nil when none matches.
func lookup(name string) (*option, error) {
	var found []*option
	for i := range options {
		if options[i].flag == name {
			return &options[i], nil
		}
		if strings.HasPrefix(options[i].flag, name) && name != "" {
			found = append(found, &options[i])
		}
	}
	if strings.HasPrefix("config", name) && name != "" && len(found) == 0 {
		return nil, usageErrorf("argument --config: use the full name")
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, o := range found {
		names[i] = "--" + o.flag
	}
	return nil, usageErrorf("ambiguous option: --%s could match %s", name, strings.Join(names, ", "))
}

// applyFlags sets the options the flags name; a repeated list flag collects
// its values, and a list given on the command line replaces the file's.
func applyFlags(o *Options, flags []given) error {
	lists := map[string][]string{}
	for _, g := range flags {
		if list, ok := g.opt.field(o).(*[]string); ok {
			lists[g.opt.flag] = append(lists[g.opt.flag], g.values...)
			*list = lists[g.opt.flag]
			continue
		}
		if err := setScalar(o, g.opt, g.values[len(g.values)-1]); err != nil {
			return err
		}
		if g.opt.ignored != "" {
			o.warnings = append(o.warnings, fmt.Sprintf("--%s: ignored: %s", g.opt.flag, g.opt.ignored))
		}
	}
	return nil
}

func setScalar(o *Options, opt *option, raw string) error {
	switch p := opt.field(o).(type) {
	case *string:
		*p = raw
	case *bool:
		*p = true
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return usageErrorf("argument --%s: invalid int value: %s", opt.flag, pyRepr(raw))
		}
		*p = n
	case *float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return usageErrorf("argument --%s: invalid float value: %s", opt.flag, pyRepr(raw))
		}
		*p = f
	}
	return nil
}

// usageErrorf is a command-line error, worded as argparse words them.
func usageErrorf(format string, args ...any) error {
	return &ConfigError{Message: "error: " + fmt.Sprintf(format, args...) + " (see --help)"}
}

// --- the YAML file -----------------------------------------------------------------------------

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// loadConfig sets the options a YAML file names; every error names the
// file, the line and the key.
func loadConfig(path string, o *Options) error {
	text, err := readLimited(path, MiB)
	if err != nil {
		return configErrorf("%s: cannot read config file: %v", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		msg := err.Error()
		where := path
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			where += ":" + m[1]
			msg = msg[len(m[0]):]
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		return configErrorf("%s: not valid YAML: %s", where, msg)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return configErrorf("%s:%d: expected a mapping of options", path, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		keyNode, valueNode := root.Content[i], root.Content[i+1]
		key := strings.ReplaceAll(keyNode.Value, "-", "_")
		if key == "upstream" {
			key = "upstreams"
		}
		where := fmt.Sprintf("%s:%d: %s", path, keyNode.Line, keyNode.Value)
		opt := optionByKey(key)
		if opt == nil {
			return configErrorf("%s: unknown key%s", where, didYouMean(key, optionKeys()))
		}
		if err := setFromNode(o, opt, valueNode, where); err != nil {
			return err
		}
		if opt.ignored != "" {
			o.warnings = append(o.warnings, fmt.Sprintf("%s: ignored: %s", where, opt.ignored))
		}
	}
	return nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

func optionByKey(key string) *option {
	for i := range options {
		if options[i].key == key {
			return &options[i]
		}
	}
	return nil
}

func optionKeys() []string {
	keys := make([]string, len(options))
	for i, o := range options {
		keys[i] = o.key
	}
	sort.Strings(keys)
	return keys
}

// setFromNode sets one option from its YAML value, checking its type.
func setFromNode(o *Options, opt *option, n *yaml.Node, where string) error {
	if list, ok := opt.field(o).(*[]string); ok {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			*list = []string{n.Value}
			return nil
		}
		var items []string
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode || item.Tag != "!!str" {
				return configErrorf("%s: expected a list of strings", where)
			}
			items = append(items, item.Value)
		}
		if n.Kind != yaml.SequenceNode {
			return configErrorf("%s: expected a list of strings", where)
		}
		*list = items
		return nil
	}
	want := map[string][]string{
		"str": {"!!str"}, "int": {"!!int"}, "int or float": {"!!int", "!!float"}, "bool": {"!!bool"},
	}
	kind := "str"
	switch opt.field(o).(type) {
	case *int:
		kind = "int"
	case *float64:
		kind = "int or float"
	case *bool:
		kind = "bool"
	}
	ok := n.Kind == yaml.ScalarNode
	if ok {
		ok = false
		for _, tag := range want[kind] {
			ok = ok || n.Tag == tag
		}
	}
	if !ok {
		return configErrorf("%s: expected %s, got %s", where, kind, yamlRepr(n))
	}
	var err error
	switch p := opt.field(o).(type) {
	case *string:
		*p = n.Value
	case *bool:
		err = n.Decode(p)
	case *int:
		err = n.Decode(p)
	case *float64:
		err = n.Decode(p)
	}
	if err != nil {
		return configErrorf("%s: expected %s, got %s", where, kind, yamlRepr(n))
	}
	return nil
}

// yamlRepr writes a YAML value as Python's repr of what PyYAML reads.
func yamlRepr(n *yaml.Node) string {
	switch {
	case n.Kind != yaml.ScalarNode:
		return map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}[n.Kind]
	case n.Tag == "!!str":
		return pyRepr(n.Value)
	case n.Tag == "!!null":
		return "None"
	case n.Tag == "!!bool":
		var b bool
		if n.Decode(&b) == nil && b {
			return "True"
		}
		return "False"
	}
	return n.Value
}

// didYouMean is " (did you mean 'x'?)" for the closest choice (at most a
// third of the word's letters apart), or "".
func didYouMean(word string, choices []string) string {
	best, bestDist := "", len(word)/3+1
	for _, c := range choices {
		if d := editDistance(word, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + pyRepr(best) + "?)"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
