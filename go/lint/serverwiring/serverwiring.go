package serverwiring

import (
	_ "embed"
	"go/ast"
	"go/types"
	"strings"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/passes/inspect"
	"golang.org/x/tools/go/ast/inspector"
	"golang.org/x/tools/go/types/typeutil"

	"github.com/memcontract/memcontract/go/lint/internal/lintutil"
)

//go:embed doc.go
var doc string

// Code is the diagnostic code, shared with the Python rule of the same check.
const Code = "MC001"

// Analyzer reports grpc.NewServer calls that do not receive memcontract's
// server options.
var Analyzer = &analysis.Analyzer{
	Name:     "serverwiring",
	Doc:      lintutil.MustExtractDoc(doc, "serverwiring"),
	Requires: []*analysis.Analyzer{inspect.Analyzer},
	Run:      run,
}

const (
	grpcPkg = "google.golang.org/grpc"
	// memcontractPkg is matched as a path suffix so that a fork or a
	// vendored copy of the package is recognized too.
	memcontractPkg = "/memcontract"
)

// wiring is what reaches one grpc.NewServer call; larger is better.
type wiring int

const (
	none    wiring = iota
	partial        // memcontract's unary or stream interceptor alone
	full           // (*memcontract.Server).ServerOptions
)

func run(pass *analysis.Pass) (any, error) {
	in := pass.ResultOf[inspect.Analyzer].(*inspector.Inspector)
	r := lintutil.NewReporter(pass, Code)
	defer r.Finish()
	in.WithStack([]ast.Node{(*ast.CallExpr)(nil)}, func(n ast.Node, push bool, stack []ast.Node) bool {
		call := n.(*ast.CallExpr)
		if !push || !lintutil.IsFunc(typeutil.Callee(pass.TypesInfo, call), grpcPkg, "NewServer") {
			return true
		}
		fn := lintutil.EnclosingFunc(stack)
		switch wiringOf(pass, fn, call.Args, map[types.Object]bool{}) {
		case none:
			if !opaque(pass, fn, call) {
				r.Report(call, "grpc.NewServer without memcontract: pass (*memcontract.Server).ServerOptions()... "+
					"so the server reports its memory pressure and sheds at level 3")
			}
		case partial:
			r.Report(call, "grpc.NewServer gets a memcontract interceptor but not ServerOptions(): "+
				"the ORCA recorder or the other interceptor chain is missing")
		}
		return true
	})
	return nil, nil
}

// wiringOf returns the best wiring found in exprs, following fn's local
// variables through their assignments.
func wiringOf(pass *analysis.Pass, fn ast.Node, exprs []ast.Expr, seen map[types.Object]bool) wiring {
	best := none
	for _, e := range exprs {
		ast.Inspect(e, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				best = max(best, calleeWiring(typeutil.Callee(pass.TypesInfo, n)))
			case *ast.Ident:
				if v, ok := pass.TypesInfo.Uses[n].(*types.Var); ok && fn != nil && !seen[v] {
					seen[v] = true
					best = max(best, wiringOf(pass, fn, lintutil.Assigned(pass.TypesInfo, fn, v), seen))
				}
			}
			return best != full
		})
	}
	return best
}

// calleeWiring says what a call to obj contributes.
func calleeWiring(obj types.Object) wiring {
	f, ok := obj.(*types.Func)
	if !ok || f.Pkg() == nil || !strings.HasSuffix(f.Pkg().Path(), memcontractPkg) {
		return none
	}
	switch f.Name() {
	case "ServerOptions":
		return full
	case "UnaryServerInterceptor", "StreamServerInterceptor":
		return partial
	}
	return none
}

// opaque reports whether call's options come from where the check cannot
// follow them: a parameter or package-level variable spread into the call,
// or another function's result, directly or through local variables.
func opaque(pass *analysis.Pass, fn ast.Node, call *ast.CallExpr) bool {
	if !call.Ellipsis.IsValid() {
		return false
	}
	return opaqueExpr(pass, fn, call.Args[len(call.Args)-1], map[types.Object]bool{})
}

func opaqueExpr(pass *analysis.Pass, fn ast.Node, e ast.Expr, seen map[types.Object]bool) bool {
	switch e := ast.Unparen(e).(type) {
	case *ast.CallExpr:
		if !lintutil.IsFunc(typeutil.Callee(pass.TypesInfo, e), "", "append") {
			return true
		}
		// The slice appended to, and a slice spread into it; single options
		// are visible.
		slices := e.Args[:1]
		if e.Ellipsis.IsValid() {
			slices = append(slices, e.Args[len(e.Args)-1])
		}
		for _, a := range slices {
			if opaqueExpr(pass, fn, a, seen) {
				return true
			}
		}
	case *ast.Ident:
		v, ok := pass.TypesInfo.Uses[e].(*types.Var)
		if !ok || seen[v] {
			return false
		}
		seen[v] = true
		if v.Parent() == v.Pkg().Scope() || fn == nil || lintutil.IsParam(fn, v) {
			return true
		}
		for _, value := range lintutil.Assigned(pass.TypesInfo, fn, v) {
			if opaqueExpr(pass, fn, value, seen) {
				return true
			}
		}
	}
	return false
}
