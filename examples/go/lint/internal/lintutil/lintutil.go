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
// at the end of the finding's line, or alone on the line above. The reason
// (up to a following " //") is required: a directive without one does not
// suppress, and the finding says why.
const Directive = "//memcontract:ignore"

// Report reports a diagnostic with code at node, unless a directive with a
// reason suppresses it.
func Report(pass *analysis.Pass, node ast.Node, code, msg string) {
	msg = code + ": " + msg
	switch suppression(pass, node.Pos(), code) {
	case suppressed:
		return
	case missingReason:
		msg += " (" + Directive + " " + code + " needs a reason to suppress this)"
	}
	pass.Report(analysis.Diagnostic{Pos: node.Pos(), End: node.End(), Category: code, Message: msg})
}

type suppressionState int

const (
	notSuppressed suppressionState = iota
	suppressed
	missingReason
)

func suppression(pass *analysis.Pass, pos token.Pos, code string) suppressionState {
	tf := pass.Fset.File(pos)
	if tf == nil {
		return notSuppressed
	}
	line := tf.Line(pos)
	for _, f := range pass.Files {
		if pass.Fset.File(f.Pos()) != tf {
			continue
		}
		for _, group := range f.Comments {
			for _, c := range group.List {
				switch l := tf.Line(c.Pos()); {
				case l == line:
				case l == line-1 && startsLine(pass, tf, c.Pos()):
				default:
					continue
				}
				if state := directive(c.Text, code); state != notSuppressed {
					return state
				}
			}
		}
	}
	return notSuppressed
}

// directive parses one comment: whether it names code, and with a reason.
func directive(text, code string) suppressionState {
	rest, ok := strings.CutPrefix(text, Directive+" ")
	if !ok {
		return notSuppressed
	}
	rest, _, _ = strings.Cut(rest, " //")
	codes, reason, _ := strings.Cut(strings.TrimSpace(rest), " ")
	switch {
	case !slices.Contains(strings.Split(codes, ","), code):
		return notSuppressed
	case strings.TrimSpace(reason) == "":
		return missingReason
	}
	return suppressed
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
