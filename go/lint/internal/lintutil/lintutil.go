// Package lintutil holds what the memcontract analyzers share: their
// documentation taken from doc.go, reporting with suppression directives,
// and small type-based predicates.
package lintutil

import (
	"go/ast"
	"go/token"
	"go/types"
	"slices"
	"strings"

	"golang.org/x/tools/go/analysis"
)

// MustExtractDoc returns the section "# Analyzer name" of a doc.go file's
// package comment, in the form go/analysis wants ("name: summary" first),
// and panics when the section is missing (a build-time mistake).
func MustExtractDoc(src, name string) string {
	var lines []string
	in := false
	for _, l := range strings.Split(src, "\n") {
		if !strings.HasPrefix(l, "//") {
			break
		}
		text := strings.TrimPrefix(strings.TrimPrefix(l, "//"), " ")
		if strings.HasPrefix(text, "# ") {
			in = text == "# Analyzer "+name
			continue
		}
		if in {
			lines = append(lines, text)
		}
	}
	doc := strings.TrimSpace(strings.Join(lines, "\n"))
	if !strings.HasPrefix(doc, name+":") {
		panic("lintutil: doc.go has no section '# Analyzer " + name + "' starting with '" + name + ":'")
	}
	return doc
}

// IsFunc reports whether obj is the package-level function pkg.name, or the
// builtin name when pkg is "".
func IsFunc(obj types.Object, pkg, name string) bool {
	if obj == nil || obj.Name() != name {
		return false
	}
	if pkg == "" {
		_, ok := obj.(*types.Builtin)
		return ok
	}
	f, ok := obj.(*types.Func)
	return ok && f.Pkg() != nil && f.Pkg().Path() == pkg && f.Signature().Recv() == nil
}

// EnclosingFunc returns the innermost function declaration or literal of an
// inspector stack, or nil at package level.
func EnclosingFunc(stack []ast.Node) ast.Node {
	for i := len(stack) - 1; i >= 0; i-- {
		switch stack[i].(type) {
		case *ast.FuncDecl, *ast.FuncLit:
			return stack[i]
		}
	}
	return nil
}

// FuncType returns the type (signature syntax) of a function declaration or
// literal.
func FuncType(fn ast.Node) *ast.FuncType {
	switch fn := fn.(type) {
	case *ast.FuncDecl:
		return fn.Type
	case *ast.FuncLit:
		return fn.Type
	}
	return nil
}

// Assigned returns every expression assigned to v inside fn: declaration
// values, plain and short assignments, and range variables (their range
// expression). An operator assignment (n += x) yields x.
func Assigned(info *types.Info, fn ast.Node, v *types.Var) []ast.Expr {
	var out []ast.Expr
	is := func(e ast.Expr) bool {
		id, ok := ast.Unparen(e).(*ast.Ident)
		return ok && info.ObjectOf(id) == v
	}
	ast.Inspect(fn, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				if is(lhs) {
					out = append(out, valueFor(n.Rhs, i))
				}
			}
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if is(id) && len(n.Values) > 0 {
					out = append(out, valueFor(n.Values, i))
				}
			}
		case *ast.RangeStmt:
			if (n.Key != nil && is(n.Key)) || (n.Value != nil && is(n.Value)) {
				out = append(out, n.X)
			}
		}
		return true
	})
	return out
}

// valueFor returns the value of the i-th left-hand side: the single call of
// a multi-value assignment, or the i-th value.
func valueFor(values []ast.Expr, i int) ast.Expr {
	if len(values) == 1 {
		return values[0]
	}
	return values[i]
}

// IsParam reports whether v is one of fn's parameters.
func IsParam(fn ast.Node, v *types.Var) bool {
	ft := FuncType(fn)
	return ft != nil && ft.Params != nil && ft.Params.Pos() <= v.Pos() && v.Pos() < ft.Params.End()
}

// Directive is the comment prefix that suppresses a finding:
//
//	//memcontract:ignore MC003 the size is checked by the interceptor
//
// at the end of the finding's line, or alone on the line above; several codes
// are separated by commas. The reason (up to a following " //") is required:
// a directive without one does not suppress, and the finding says why. A
// directive that suppresses nothing is reported (MC902), as staticcheck does.
const Directive = "//memcontract:ignore"

// UnusedCode is the code of an unused suppression, as in the Python linter.
const UnusedCode = "MC902"

// Reporter reports one analyzer's diagnostics under its code, honoring the
// directives that name the code.
type Reporter struct {
	pass       *analysis.Pass
	code       string
	directives []*directive
}

type directive struct {
	pos     token.Pos
	file    *token.File
	line    int
	ownLine bool // alone on its line: it also covers the next line
	reason  bool
	used    bool
}

// NewReporter returns a Reporter of code for pass, with the package's
// directives naming code.
func NewReporter(pass *analysis.Pass, code string) *Reporter {
	r := &Reporter{pass: pass, code: code}
	for _, f := range pass.Files {
		tf := pass.Fset.File(f.Pos())
		for _, group := range f.Comments {
			for _, c := range group.List {
				named, reason := parseDirective(c.Text, code)
				if !named {
					continue
				}
				r.directives = append(r.directives, &directive{
					pos: c.Pos(), file: tf, line: tf.Line(c.Pos()),
					ownLine: startsLine(pass, tf, c.Pos()), reason: reason,
				})
			}
		}
	}
	return r
}

// Report reports msg at node, unless a directive with a reason suppresses it.
func (r *Reporter) Report(node ast.Node, msg string) {
	msg = r.code + ": " + msg
	tf := r.pass.Fset.File(node.Pos())
	line := tf.Line(node.Pos())
	for _, d := range r.directives {
		if d.file != tf || (d.line != line && !(d.ownLine && d.line == line-1)) {
			continue
		}
		d.used = true
		if d.reason {
			return
		}
		msg += " (" + Directive + " " + r.code + " needs a reason to suppress this)"
		break
	}
	r.pass.Report(analysis.Diagnostic{Pos: node.Pos(), End: node.End(), Category: r.code, Message: msg})
}

// Finish reports the directives naming the code that suppressed nothing.
func (r *Reporter) Finish() {
	for _, d := range r.directives {
		if !d.used {
			r.pass.Report(analysis.Diagnostic{
				Pos: d.pos, Category: UnusedCode,
				Message: UnusedCode + ": unused suppression: no " + r.code + " finding on this line or the next",
			})
		}
	}
}

// parseDirective reports whether comment text is a directive naming code,
// and whether it gives a reason.
func parseDirective(text, code string) (named, reason bool) {
	rest, ok := strings.CutPrefix(text, Directive+" ")
	if !ok {
		return false, false
	}
	rest, _, _ = strings.Cut(rest, " //")
	codes, why, _ := strings.Cut(strings.TrimSpace(rest), " ")
	return slices.Contains(strings.Split(codes, ","), code), strings.TrimSpace(why) != ""
}

// startsLine reports whether only blanks precede pos on its line.
func startsLine(pass *analysis.Pass, tf *token.File, pos token.Pos) bool {
	src, err := pass.ReadFile(tf.Name())
	if err != nil {
		return false
	}
	start := tf.Offset(tf.LineStart(tf.Line(pos)))
	return strings.TrimSpace(string(src[start:tf.Offset(pos)])) == ""
}
