package memcontract

// YAML mechanics of contract files, the Go twin of Python's
// memcontract/_contract_yaml.py: bounded reading, a node tree with line
// numbers, PyYAML's YAML 1.1 scalar resolution (so "on" is a boolean, "1:30"
// is 90 and "y" is a string, as in Python), typed values, and every problem
// turned into a *ContractError naming file, line and field with the same
// message the Python loader gives.
//
// The walker reports the first error by panicking with a *ContractError that
// parseContract recovers; this keeps each check one line, as in Python.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

const (
	maxContractBytes = 1 << 20
	// Deeper than any valid contract (which nests 5 levels); bounds recursion.
	maxYAMLDepth = 64
	uint32Max    = 1<<32 - 1
	yamlTag      = "tag:yaml.org,2002:"
)

// ContractError is a contract file or value that is invalid. Error() reads
// "FILE:LINE: FIELD: message", as Python's memcontract.ContractError does.
type ContractError struct {
	// Path names the file ("<string>" for text handed over directly).
	Path string
	// Line is 1-based, 0 when the error has no line.
	Line int
	// Field is dotted like "modules[0].ladder.heap.level3", empty for none.
	Field string
	// Message says what is wrong.
	Message string
}

func (e *ContractError) Error() string {
	where := e.Path
	if where == "" {
		where = "<contract>"
	}
	if e.Line > 0 {
		where += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return where + ": " + e.Field + ": " + e.Message
	}
	return where + ": " + e.Message
}

// readContractFile returns a contract file's text: size, readability and
// encoding problems are ContractErrors.
func readContractFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &ContractError{Path: path, Message: "cannot read file: " + errText(err)}
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxContractBytes {
		return nil, sizeError(path, st.Size())
	}
	// Size can lie (pipes, /proc): never read more than one byte past the limit.
	b, err := io.ReadAll(io.LimitReader(f, maxContractBytes+1))
	if err != nil {
		return nil, &ContractError{Path: path, Message: "cannot read file: " + errText(err)}
	}
	if len(b) > maxContractBytes {
		return nil, sizeError(path, int64(len(b)))
	}
	return b, nil
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	s := err.Error()
	// Python's strerror is capitalised ("No such file or directory").
	if s != "" {
		r, n := utf8.DecodeRuneInString(s)
		s = string(unicode.ToUpper(r)) + s[n:]
	}
	return s
}

func sizeError(path string, size int64) error {
	return &ContractError{Path: path, Message: fmt.Sprintf("file is larger than 1 MiB (%d bytes)", size)}
}

// decodeText checks the size and UTF-8 of b and strips a byte-order mark.
func decodeText(b []byte, path string) ([]byte, error) {
	if len(b) > maxContractBytes {
		return nil, sizeError(path, int64(len(b)))
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			line := bytes.Count(b[:i], []byte("\n")) + 1
			return nil, &ContractError{Path: path, Line: line,
				Message: fmt.Sprintf("file is not valid UTF-8 (byte 0x%02x at offset %d)", b[i], i)}
		}
		// PyYAML's reader refuses what YAML calls non-printable.
		if !yamlPrintable(r) {
			line := bytes.Count(b[:i], []byte("\n")) + 1
			return nil, &ContractError{Path: path, Line: line, Message: "invalid YAML: special characters are not allowed"}
		}
		i += n
	}
	return b, nil
}

func yamlPrintable(r rune) bool {
	switch {
	case r == 0x09 || r == 0x0A || r == 0x0D || (r >= 0x20 && r <= 0x7E) || r == 0x85:
		return true
	case r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// composeYAML returns the single document's root node (nil for an empty
// stream), refusing anchors, aliases and deep nesting like Python's composer.
func composeYAML(text []byte, path string) (root *yaml.Node, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlSyntaxError(err, path)
	}
	if err := checkComposed(&doc, 0, path); err != nil {
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &ContractError{Path: path, Line: next.Line, Message: "invalid YAML: but found another document"}
	case !errors.Is(err, io.EOF):
		return nil, yamlSyntaxError(err, path)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return nil, nil
}

func yamlSyntaxError(err error, path string) error {
	msg := err.Error()
	if strings.Contains(msg, "unknown anchor") {
		return &ContractError{Path: path, Message: "YAML anchors and aliases are not allowed"}
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ContractError{Path: path, Line: line, Message: "invalid YAML: " + m[2]}
	}
	return &ContractError{Path: path, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// checkComposed walks the tree in document order, as Python's composer sees
// events: anchors and aliases are refused, and nesting deeper than 64.
func checkComposed(n *yaml.Node, depth int, path string) error {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkComposed(c, 0, path); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return &ContractError{Path: path, Line: n.Line, Message: "YAML anchors and aliases are not allowed"}
	}
	if depth >= maxYAMLDepth {
		return &ContractError{Path: path, Line: n.Line, Message: fmt.Sprintf("nested deeper than %d levels", maxYAMLDepth)}
	}
	for _, c := range n.Content {
		if err := checkComposed(c, depth+1, path); err != nil {
			return err
		}
	}
	return nil
}

// --- scalars as PyYAML reads them ---------------------------------------------------------

type scalarKind int

const (
	kindNull scalarKind = iota
	kindBool
	kindInt
	kindFloat
	kindStr
)

// scalarValue is a constructed scalar: Python's None, bool, int, float or str.
type scalarValue struct {
	kind scalarKind
	b    bool
	i    *big.Int
	f    float64
	s    string
}

// PyYAML's implicit resolvers (YAML 1.1), tried in this order for a plain
// scalar whose first character is in first.
var yamlResolvers = []struct {
	tag   string
	first string
	re    *regexp.Regexp
}{
	{"bool", "yYnNtTfFoO", regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)},
	{"float", "-+0123456789.", regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)},
	{"int", "-+0123456789", regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)},
	{"merge", "<", regexp.MustCompile(`^(?:<<)$`)},
	{"null", "~nN", regexp.MustCompile(`^(?:~|null|Null|NULL)$`)},
	{"timestamp", "0123456789", regexp.MustCompile(`^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$`)},
	{"value", "=", regexp.MustCompile(`^(?:=)$`)},
}

const (
	styleQuoted = yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle
)

// isPlain reports whether a scalar was written without quotes or block style.
func isPlain(n *yaml.Node) bool { return n.Style&styleQuoted == 0 }

// pyTag returns the tag PyYAML gives n: an explicit tag as written (long
// form), else the implicit one.
func pyTag(n *yaml.Node) string {
	if n.Style&yaml.TaggedStyle != 0 {
		if strings.HasPrefix(n.Tag, "!!") {
			return yamlTag + n.Tag[2:]
		}
		return n.Tag
	}
	switch n.Kind {
	case yaml.MappingNode:
		return yamlTag + "map"
	case yaml.SequenceNode:
		return yamlTag + "seq"
	}
	if !isPlain(n) {
		return yamlTag + "str"
	}
	if n.Value == "" {
		return yamlTag + "null"
	}
	for _, r := range yamlResolvers {
		if strings.IndexByte(r.first, n.Value[0]) >= 0 && r.re.MatchString(n.Value) {
			return yamlTag + r.tag
		}
	}
	return yamlTag + "str"
}

var boolValues = map[string]bool{"yes": true, "no": false, "true": true, "false": false, "on": true, "off": false}

// construct builds the value of a scalar node with tag (one of the five
// scalar tags), as PyYAML's SafeConstructor does; the error text is Python's.
func construct(tag, value string) (scalarValue, error) {
	switch strings.TrimPrefix(tag, yamlTag) {
	case "null":
		return scalarValue{kind: kindNull}, nil
	case "bool":
		b, ok := boolValues[strings.ToLower(value)]
		if !ok {
			return scalarValue{}, errors.New(pyRepr(strings.ToLower(value)))
		}
		return scalarValue{kind: kindBool, b: b}, nil
	case "int":
		i, err := constructInt(value)
		return scalarValue{kind: kindInt, i: i}, err
	case "float":
		f, err := constructFloat(value)
		return scalarValue{kind: kindFloat, f: f}, err
	}
	return scalarValue{kind: kindStr, s: value}, nil
}

func splitSign(v string) (string, int) {
	sign := 1
	if v == "" {
		return v, sign
	}
	if v[0] == '-' {
		sign = -1
	}
	if v[0] == '+' || v[0] == '-' {
		v = v[1:]
	}
	return v, sign
}

func constructInt(value string) (*big.Int, error) {
	v := strings.ReplaceAll(value, "_", "")
	if v == "" {
		return nil, errors.New("string index out of range")
	}
	v, sign := splitSign(v)
	var n *big.Int
	var err error
	switch {
	case v == "0":
		n = new(big.Int)
	case strings.HasPrefix(v, "0b"):
		n, err = pyInt(v[2:], 2)
	case strings.HasPrefix(v, "0x"):
		n, err = pyInt(v[2:], 16)
	case v != "" && v[0] == '0':
		n, err = pyInt(strings.TrimPrefix(v, "0o"), 8)
	case strings.Contains(v, ":"):
		n = new(big.Int)
		for _, part := range strings.Split(v, ":") {
			d, perr := pyInt(part, 10)
			if perr != nil {
				return nil, perr
			}
			n.Mul(n, big.NewInt(60)).Add(n, d)
		}
	default:
		n, err = pyInt(v, 10)
	}
	if err != nil {
		return nil, err
	}
	if sign < 0 {
		n.Neg(n)
	}
	return n, nil
}

func pyInt(s string, base int) (*big.Int, error) {
	n, ok := new(big.Int).SetString(strings.TrimSpace(s), base)
	if !ok || strings.ContainsAny(s, "+-") && base != 10 {
		return nil, fmt.Errorf("invalid literal for int() with base %d: %s", base, pyRepr(s))
	}
	return n, nil
}

var pyFloatRE = regexp.MustCompile(`^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$`)

func constructFloat(value string) (float64, error) {
	v := strings.ToLower(strings.ReplaceAll(value, "_", ""))
	if v == "" {
		return 0, errors.New("string index out of range")
	}
	v, sign := splitSign(v)
	switch {
	case v == ".inf":
		return float64(sign) * math.Inf(1), nil
	case v == ".nan":
		return math.NaN(), nil
	case strings.Contains(v, ":"):
		var f, base float64 = 0, 1
		parts := strings.Split(v, ":")
		for i := len(parts) - 1; i >= 0; i-- {
			d, err := pyFloat(parts[i])
			if err != nil {
				return 0, err
			}
			f += d * base
			base *= 60
		}
		return float64(sign) * f, nil
	}
	f, err := pyFloat(v)
	return float64(sign) * f, err
}

// pyFloat parses like Python's float(): no hex, overflow gives infinity.
func pyFloat(s string) (float64, error) {
	t := strings.TrimSpace(s)
	switch strings.TrimLeft(strings.ToLower(t), "+-") {
	case "inf", "infinity", "nan":
		f, _ := strconv.ParseFloat(t, 64)
		return f, nil
	}
	if !pyFloatRE.MatchString(t) {
		return 0, fmt.Errorf("could not convert string to float: %s", pyRepr(s))
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("could not convert string to float: %s", pyRepr(s))
	}
	return f, nil
}

// --- Python's text forms, so both languages print the same messages -------------------------

// pyRepr is Python's repr() of a string.
func pyRepr(s string) string {
	quote := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(quote):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && !unicode.IsPrint(r):
			switch {
			case r <= 0xff:
				fmt.Fprintf(&b, `\x%02x`, r)
			case r <= 0xffff:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// pyFloatRepr is Python's repr() of a float.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// pyNumber is Python's fmt() of _contract_yaml: an integral value without
// ".0", else repr.
func pyNumber(f float64) string {
	if !math.IsInf(f, 0) && !math.IsNaN(f) && f == math.Trunc(f) {
		return new(big.Float).SetFloat64(f).Text('f', 0)
	}
	return pyFloatRepr(f)
}

// pyG is Python's format(f, "g").
func pyG(f float64) string {
	return strconv.FormatFloat(f, 'g', 6, 64)
}

func describe(n *yaml.Node, v *scalarValue) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case v == nil || v.kind == kindNull:
		return "null"
	case v.kind == kindBool:
		return fmt.Sprintf("a boolean (%t)", v.b)
	case v.kind == kindInt:
		return "a number (" + v.i.String() + ")"
	case v.kind == kindFloat:
		return "a number (" + pyFloatRepr(v.f) + ")"
	}
	shown := v.s
	if r := []rune(shown); len(r) > 40 {
		shown = string(r[:37]) + "..."
	}
	return "a string (" + pyRepr(shown) + ")"
}

// didYouMean is Python's did_you_mean: " (did you mean 'x'?)" for the
// closest choice by difflib's ratio (cutoff 0.6), or "".
func didYouMean(word string, choices []string) string {
	best, bestScore := "", -1.0
	for _, c := range choices {
		score := matchRatio([]rune(c), []rune(word))
		if score < 0.6 {
			continue
		}
		if score > bestScore || score == bestScore && c > best {
			best, bestScore = c, score
		}
	}
	if bestScore < 0 {
		return ""
	}
	return " (did you mean " + pyRepr(best) + "?)"
}

// matchRatio is difflib.SequenceMatcher(None, a, b).ratio() for short
// strings (no junk, no autojunk).
func matchRatio(a, b []rune) float64 {
	if len(a)+len(b) == 0 {
		return 1
	}
	b2j := map[rune][]int{}
	for j, r := range b {
		b2j[r] = append(b2j[r], j)
	}
	longest := func(alo, ahi, blo, bhi int) (int, int, int) {
		besti, bestj, bestsize := alo, blo, 0
		j2len := map[int]int{}
		for i := alo; i < ahi; i++ {
			next := map[int]int{}
			for _, j := range b2j[a[i]] {
				if j < blo {
					continue
				}
				if j >= bhi {
					break
				}
				k := j2len[j-1] + 1
				next[j] = k
				if k > bestsize {
					besti, bestj, bestsize = i-k+1, j-k+1, k
				}
			}
			j2len = next
		}
		return besti, bestj, bestsize
	}
	matches := 0
	queue := [][4]int{{0, len(a), 0, len(b)}}
	for len(queue) > 0 {
		q := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		i, j, k := longest(q[0], q[1], q[2], q[3])
		if k == 0 {
			continue
		}
		matches += k
		if q[0] < i && q[2] < j {
			queue = append(queue, [4]int{q[0], i, q[2], j})
		}
		if i+k < q[1] && j+k < q[3] {
			queue = append(queue, [4]int{i + k, q[1], j + k, q[3]})
		}
	}
	return 2.0 * float64(matches) / float64(len(a)+len(b))
}

// --- the walker ---------------------------------------------------------------------------

// walker reads typed values out of nodes; every failure panics with a
// *ContractError naming file, line and field (recovered by parseContract).
type walker struct {
	path string
}

func (w *walker) fail(msg string, n *yaml.Node, field string) {
	line := 0
	if n != nil {
		line = n.Line
	}
	panic(&ContractError{Path: w.path, Line: line, Field: field, Message: msg})
}

func joinField(field string, key any) string {
	if i, ok := key.(int); ok {
		return fmt.Sprintf("%s[%d]", field, i)
	}
	if field == "" {
		return key.(string)
	}
	return field + "." + key.(string)
}

var scalarTags = map[string]bool{yamlTag + "str": true, yamlTag + "int": true, yamlTag + "float": true, yamlTag + "bool": true, yamlTag + "null": true}

// scalar returns the value of a scalar node; what names what was expected.
func (w *walker) scalar(n *yaml.Node, field, what string) scalarValue {
	if n.Kind != yaml.ScalarNode {
		w.fail("expected "+what+", got "+describe(n, nil), n, field)
	}
	tag := pyTag(n)
	if !scalarTags[tag] {
		w.fail("unsupported YAML value (tag "+tag+"); quote it", n, field)
	}
	v, err := construct(tag, n.Value)
	if err != nil {
		w.fail("unreadable value: "+err.Error(), n, field)
	}
	return v
}

func (w *walker) checkTag(n *yaml.Node, field string) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		if tag := pyTag(n); tag != yamlTag+"map" && tag != yamlTag+"seq" {
			w.fail("unsupported YAML value (tag "+tag+")", n, field)
		}
	}
}

func (w *walker) describe(n *yaml.Node, field string) string {
	if n.Kind == yaml.ScalarNode {
		v := w.scalar(n, field, "a single value")
		return describe(n, &v)
	}
	return describe(n, nil)
}

// entries are the value nodes of a mapping by key, and the keys in
// document order.
type entries struct {
	keys  []string
	nodes map[string]*yaml.Node
}

func (e *entries) get(key string) (*yaml.Node, bool) {
	n, ok := e.nodes[key]
	return n, ok
}

// mapping returns the entries of a mapping; unknown and duplicate keys are
// errors.
func (w *walker) mapping(n *yaml.Node, field string, allowed []string) *entries {
	w.checkTag(n, field)
	if n.Kind != yaml.MappingNode {
		w.fail("expected a mapping, got "+w.describe(n, field), n, field)
	}
	out := &entries{nodes: map[string]*yaml.Node{}}
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := w.key(kn, field)
		keyField := joinField(field, key)
		if _, dup := out.nodes[key]; dup {
			w.fail(fmt.Sprintf("duplicate key %s (first at line %d)", pyRepr(key), firstLine[key]), kn, keyField)
		}
		if !contains(allowed, key) {
			w.fail("unknown key "+pyRepr(key)+didYouMean(key, allowed), kn, keyField)
		}
		out.nodes[key] = vn
		out.keys = append(out.keys, key)
		firstLine[key] = kn.Line
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (w *walker) key(n *yaml.Node, field string) string {
	if n.Kind == yaml.ScalarNode && pyTag(n) == yamlTag+"merge" {
		w.fail("merge keys (<<) are not allowed", n, field)
	}
	if n.Kind != yaml.ScalarNode {
		w.fail("keys must be strings, got "+describe(n, nil), n, field)
	}
	v := w.scalar(n, field, "a single value")
	if v.kind != kindStr {
		w.fail("keys must be strings, got "+describe(n, &v), n, field)
	}
	return v.s
}

func (w *walker) sequence(n *yaml.Node, field string) []*yaml.Node {
	w.checkTag(n, field)
	if n.Kind != yaml.SequenceNode {
		w.fail("expected a list, got "+w.describe(n, field), n, field)
	}
	return n.Content
}

func (w *walker) str(n *yaml.Node, field, what string) string {
	v := w.scalar(n, field, what)
	if v.kind != kindStr {
		w.fail("expected "+what+", got "+describe(n, &v), n, field)
	}
	return v.s
}

func (w *walker) strs(n *yaml.Node, field string) []string {
	items := w.sequence(n, field)
	out := make([]string, len(items))
	for i, item := range items {
		out[i] = w.str(item, joinField(field, i), "a string")
	}
	return out
}

// choice returns a string that must be one of choices (Python's _choice).
func (w *walker) choice(n *yaml.Node, field string, choices []string) string {
	list := strings.Join(choices, ", ")
	v := w.str(n, field, "one of "+list)
	if !contains(choices, v) {
		w.fail("expected one of "+list+", got "+pyRepr(v)+didYouMean(v, choices), n, field)
	}
	return v
}

func (w *walker) boolean(n *yaml.Node, field string) bool {
	v := w.scalar(n, field, "true or false")
	if v.kind != kindBool {
		w.fail("expected true or false, got "+describe(n, &v), n, field)
	}
	return v.b
}

// integer returns an integer in [low, high] (booleans and floats are not
// integers).
func (w *walker) integer(n *yaml.Node, field string, low, high int64) int64 {
	v := w.scalar(n, field, "an integer")
	if v.kind != kindInt {
		w.fail("expected an integer, got "+describe(n, &v), n, field)
	}
	if v.i.Cmp(big.NewInt(low)) < 0 || v.i.Cmp(big.NewInt(high)) > 0 {
		w.fail(fmt.Sprintf("must be between %d and %d, got %s", low, high, v.i), n, field)
	}
	return v.i.Int64()
}

// numberRange bounds a number: above < value <= atMost and value < below.
type numberRange struct {
	above, atMost, below float64
}

var positive = numberRange{above: 0, atMost: math.Inf(1), below: math.Inf(1)}

func (w *walker) number(n *yaml.Node, field string, r numberRange) float64 {
	v := w.finite(n, field)
	if v <= r.above {
		w.fail(fmt.Sprintf("must be greater than %s, got %s", pyNumber(r.above), pyNumber(v)), n, field)
	}
	if v > r.atMost {
		w.fail(fmt.Sprintf("must be at most %s, got %s", pyNumber(r.atMost), pyNumber(v)), n, field)
	}
	if v >= r.below {
		w.fail(fmt.Sprintf("must be less than %s, got %s", pyNumber(r.below), pyNumber(v)), n, field)
	}
	return v
}

// yaml12Float is a YAML 1.2 number PyYAML's YAML 1.1 resolver reads as a
// string ("1e3", "5."); written plain, both loaders read it as a number.
var yaml12Float = regexp.MustCompile(`^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$`)

func (w *walker) finite(n *yaml.Node, field string) float64 {
	v := w.scalar(n, field, "a number")
	if v.kind == kindStr && pyTag(n) == yamlTag+"str" && isPlain(n) && yaml12Float.MatchString(v.s) {
		f, _ := strconv.ParseFloat(v.s, 64)
		v = scalarValue{kind: kindFloat, f: f}
	}
	var f float64
	switch v.kind {
	case kindInt:
		bf, _ := new(big.Float).SetInt(v.i).Float64()
		if math.IsInf(bf, 0) {
			w.fail("number is too large", n, field)
		}
		f = bf
	case kindFloat:
		f = v.f
	default:
		w.fail("expected a number, got "+describe(n, &v), n, field)
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		w.fail("must be a finite number, got "+pyFloatRepr(f), n, field)
	}
	return f
}
