package requestalloc

import (
	_ "embed"
	"go/ast"
	"go/token"
	"go/types"
	"slices"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/passes/inspect"
	"golang.org/x/tools/go/ast/inspector"
	"golang.org/x/tools/go/types/typeutil"

	"github.com/memcontract/memcontract/go/lint/internal/lintutil"
)

//go:embed doc.go
var doc string

// Code is the diagnostic code, shared with the Python rule of the same check.
const Code = "MC003"

// Analyzer reports allocations sized by request data inside gRPC handlers.
var Analyzer = &analysis.Analyzer{
	Name:     "requestalloc",
	Doc:      lintutil.MustExtractDoc(doc, "requestalloc"),
	Requires: []*analysis.Analyzer{inspect.Analyzer},
	Run:      run,
}

func run(pass *analysis.Pass) (any, error) {
	in := pass.ResultOf[inspect.Analyzer].(*inspector.Inspector)
	r := lintutil.NewReporter(pass, Code)
	defer r.Finish()
	in.Preorder([]ast.Node{(*ast.FuncDecl)(nil)}, func(n ast.Node) {
		fn := n.(*ast.FuncDecl)
		if fn.Body == nil || fn.Recv == nil {
			return
		}
		if h, ok := handlerOf(pass, fn, r); ok {
			h.check()
		}
	})
	return nil, nil
}

// handler is one gRPC handler method and what in it is request data.
type handler struct {
	pass    *analysis.Pass
	report  *lintutil.Reporter
	fn      *ast.FuncDecl
	stream  *types.Var            // the stream parameter, or nil (unary)
	seeds   []types.Object        // the request parameter, if any
	tainted map[types.Object]bool // variables holding request data
	checked map[string]bool       // expressions an early exit bounds, as written
}

// handlerOf recognizes the three handler shapes of generated service code
// and seeds the request data: the request parameter, or the stream whose
// Recv returns it.
func handlerOf(pass *analysis.Pass, fn *ast.FuncDecl, r *lintutil.Reporter) (*handler, bool) {
	obj, ok := pass.TypesInfo.Defs[fn.Name].(*types.Func)
	if !ok {
		return nil, false
	}
	sig := obj.Signature()
	params, results := sig.Params(), sig.Results()
	if results.Len() == 0 || !isError(results.At(results.Len()-1).Type()) {
		return nil, false
	}
	h := &handler{pass: pass, fn: fn, report: r}
	switch {
	case params.Len() == 2 && results.Len() == 2 && isContext(params.At(0).Type()) && isMessage(params.At(1).Type()):
		h.seeds = []types.Object{params.At(1)}
	case params.Len() == 2 && results.Len() == 1 && isMessage(params.At(0).Type()) && isStream(params.At(1).Type(), "Send"):
		h.seeds = []types.Object{params.At(0)}
		h.stream = params.At(1)
	case params.Len() == 1 && results.Len() == 1 && isStream(params.At(0).Type(), "Recv"):
		h.stream = params.At(0)
	default:
		return nil, false
	}
	return h, true
}

// check propagates request data through the handler, finds what early exits
// bound, propagates again without it, and reports the allocations request
// data sizes.
func (h *handler) check() {
	h.propagate()
	h.checked = h.earlyExits()
	if len(h.checked) > 0 {
		h.propagate()
	}
	ast.Inspect(h.fn.Body, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok {
			h.checkCall(call)
		}
		return true
	})
}

// propagate taints the variables request data flows into, from the seeds,
// until nothing changes (flow-insensitive).
func (h *handler) propagate() {
	info := h.pass.TypesInfo
	h.tainted = map[types.Object]bool{}
	for _, seed := range h.seeds {
		h.tainted[seed] = true
	}
	for changed := true; changed; {
		changed = false
		ast.Inspect(h.fn.Body, func(n ast.Node) bool {
			var lhs, rhs []ast.Expr
			switch n := n.(type) {
			case *ast.AssignStmt:
				lhs, rhs = n.Lhs, n.Rhs
			case *ast.ValueSpec:
				for _, id := range n.Names {
					lhs = append(lhs, id)
				}
				rhs = n.Values
			case *ast.RangeStmt:
				lhs, rhs = []ast.Expr{n.Key, n.Value}, []ast.Expr{n.X}
			}
			for i, l := range lhs {
				id, ok := l.(*ast.Ident)
				if !ok || len(rhs) == 0 {
					continue
				}
				v := info.ObjectOf(id)
				value := rhs[min(i, len(rhs)-1)]
				if v != nil && !h.tainted[v] && h.isRequestData(value) {
					h.tainted[v] = true
					changed = true
				}
			}
			return true
		})
	}
}

// earlyExits returns the request-data expressions that an if statement
// compares with a bound and leaves the handler (or loop) on when too large:
// if n > limit { return ... }. Where the check is does not matter.
func (h *handler) earlyExits() map[string]bool {
	checked := map[string]bool{}
	ast.Inspect(h.fn.Body, func(n ast.Node) bool {
		if s, ok := n.(*ast.IfStmt); ok && exits(s.Body) {
			h.tooLarge(s.Cond, false, checked)
		}
		return true
	})
	return checked
}

// exits reports whether a block ends by leaving: return, panic, break or
// continue.
func exits(b *ast.BlockStmt) bool {
	if len(b.List) == 0 {
		return false
	}
	switch last := b.List[len(b.List)-1].(type) {
	case *ast.ReturnStmt, *ast.BranchStmt:
		return true
	case *ast.ExprStmt:
		call, ok := last.X.(*ast.CallExpr)
		if !ok {
			return false
		}
		id, ok := call.Fun.(*ast.Ident)
		return ok && id.Name == "panic"
	}
	return false
}

// tooLarge adds to checked the expressions for which cond is true whenever
// they are too large (negated: false whenever they are).
func (h *handler) tooLarge(cond ast.Expr, negated bool, checked map[string]bool) {
	switch c := ast.Unparen(cond).(type) {
	case *ast.UnaryExpr:
		if c.Op == token.NOT {
			h.tooLarge(c.X, !negated, checked)
		}
	case *ast.BinaryExpr:
		either := token.LOR
		if negated {
			either = token.LAND
		}
		greater, less := []token.Token{token.GTR, token.GEQ}, []token.Token{token.LSS, token.LEQ}
		if negated {
			greater, less = less, greater
		}
		switch {
		case c.Op == either:
			h.tooLarge(c.X, negated, checked)
			h.tooLarge(c.Y, negated, checked)
		case slices.Contains(greater, c.Op) && h.bounds(c.Y, c.X):
			checked[types.ExprString(c.X)] = true
		case slices.Contains(less, c.Op) && h.bounds(c.X, c.Y):
			checked[types.ExprString(c.Y)] = true
		}
	}
}

func (h *handler) bounds(bound, subject ast.Expr) bool {
	return h.isRequestData(subject) && !h.isRequestData(bound)
}

// checkCall reports call when it allocates an amount of memory given by
// request data.
func (h *handler) checkCall(call *ast.CallExpr) {
	callee := typeutil.Callee(h.pass.TypesInfo, call)
	var sizes []ast.Expr
	what := ""
	switch {
	case lintutil.IsFunc(callee, "", "make") && len(call.Args) >= 2 && isSlice(h.pass.TypesInfo.TypeOf(call.Args[0])):
		sizes, what = call.Args[1:], "make("+types.ExprString(call.Args[0])+", ...)"
	case lintutil.IsFunc(callee, "bytes", "Repeat") && len(call.Args) == 2:
		sizes, what = call.Args[1:], "bytes.Repeat"
	case lintutil.IsFunc(callee, "strings", "Repeat") && len(call.Args) == 2:
		sizes, what = call.Args[1:], "strings.Repeat"
	default:
		return
	}
	for _, size := range sizes {
		if h.isRequestData(size) {
			h.report.Report(call, what+" sized by request data ("+types.ExprString(size)+
				"): bound it with min(n, limit) or check it before allocating")
			return
		}
	}
}

// isRequestData reports whether e's value derives from the request: it
// mentions a tainted variable or a stream.Recv() call, outside a min(...)
// that bounds it.
func (h *handler) isRequestData(e ast.Expr) bool {
	info := h.pass.TypesInfo
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if x, ok := n.(ast.Expr); ok && len(h.checked) > 0 && h.checked[types.ExprString(x)] {
			return false
		}
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.CallExpr:
			callee := typeutil.Callee(info, n)
			if lintutil.IsFunc(callee, "", "min") && h.hasBound(n.Args) {
				return false
			}
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && h.stream != nil && sel.Sel.Name == "Recv" {
				if id, ok := ast.Unparen(sel.X).(*ast.Ident); ok && info.ObjectOf(id) == h.stream {
					found = true
				}
			}
		case *ast.Ident:
			if h.tainted[info.ObjectOf(n)] {
				found = true
			}
		}
		return !found
	})
	return found
}

// hasBound reports whether one of min's arguments is not request data (a
// constant, a setting), which bounds the result.
func (h *handler) hasBound(args []ast.Expr) bool {
	for _, a := range args {
		if !h.isRequestData(a) {
			return true
		}
	}
	return false
}

func isError(t types.Type) bool {
	return types.Identical(t, types.Universe.Lookup("error").Type())
}

func isContext(t types.Type) bool {
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "context" && n.Obj().Name() == "Context"
}

// isMessage reports whether t is a pointer to a named struct, as generated
// request messages are.
func isMessage(t types.Type) bool {
	p, ok := types.Unalias(t).(*types.Pointer)
	if !ok {
		return false
	}
	n, ok := types.Unalias(p.Elem()).(*types.Named)
	if !ok {
		return false
	}
	_, ok = n.Underlying().(*types.Struct)
	return ok
}

// isStream reports whether t has a Context method and the named one (Send
// for a server stream, Recv for a client or bidirectional stream).
func isStream(t types.Type, method string) bool {
	for _, name := range []string{"Context", method} {
		if obj, _, _ := types.LookupFieldOrMethod(t, true, nil, name); obj == nil {
			return false
		}
	}
	return true
}

func isSlice(t types.Type) bool {
	_, ok := t.Underlying().(*types.Slice)
	return ok
}
