"""A gRPC server is built without memcontract (MC001, unwired-server).

What: every ``grpc.server(...)`` and ``grpc.aio.server(...)`` gets memcontract's server
interceptor in ``interceptors`` (``server_interceptor(guard)``, or for grpc.aio
``aio_server_interceptor(guard)``), or is passed to ``wrap_server(server, guard)`` and the
server that returns is the one services are added to.

Why: an unwired server neither tells its callers its memory pressure (``x-memory-*``, ORCA) nor
sheds non-core calls at level 3, so nothing stops it from running past its contract.

Example::

    server = grpc.server(pool)                                            # MC001
    server = grpc.server(pool, interceptors=[server_interceptor(guard)])  # wired
    server = wrap_server(grpc.server(pool), guard)                        # wired

    server = grpc.server(pool)   # MC001: is passed to wrap_server, but the wrapped
    wrap_server(server, guard)   # server it returns is discarded

    server = grpc.server(pool)                  # MC001: wrap_server guards services as
    add_InventoryServicer_to_server(s, server)  # they are added, and this one was added
    server = wrap_server(server, guard)         # before it

The check follows the interceptors through local lists (assignment, ``+=``, ``append``,
``extend``, ``[*base, ...]``) and ``wrap_server`` applied to the variable or ``self.attribute``
holding the server in the same function or class. Interceptors it cannot see (a parameter, an
attribute, another function's result, ``**kwargs``) are not reported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import ClassVar, TypeGuard

from ..engine import Context
from ..finding import Finding
from . import _flow

SYNC, AIO = "sync", "aio"
SERVERS = {"grpc.server": SYNC, "grpc.aio.server": AIO}
INTERCEPTORS = {
    "memcontract.interceptors.server_interceptor": SYNC,
    "memcontract.interceptors.aio_server_interceptor": AIO,
}
INTERCEPTOR_NAME = {SYNC: "server_interceptor", AIO: "aio_server_interceptor"}
WRAP_SERVER = "memcontract.interceptors.wrap_server"
#: The position of ``interceptors`` in grpc.server and grpc.aio.server.
INTERCEPTORS_POSITION = 2


class UnwiredServer:
    """MC001: a ``grpc.server`` / ``grpc.aio.server`` without memcontract."""

    code: ClassVar[str] = "MC001"
    node_types: ClassVar[tuple[type[ast.AST], ...]] = (ast.Call,)

    def check(self, node: ast.Call, ctx: Context) -> Iterator[Finding]:
        """Report ``node`` when it builds a server that memcontract does not guard."""
        qualname = ctx.imports.callee(node)
        flavor = SERVERS.get(qualname or "")
        if flavor is None:
            return
        problem = _Server(node, flavor, ctx).problem()
        if problem:
            yield ctx.finding(node, self.code, f"{qualname}(...) {problem}")


class _Server:
    def __init__(self, call: ast.Call, flavor: str, ctx: Context) -> None:
        self.call = call
        self.flavor = flavor
        self.ctx = ctx
        self.scopes = ctx.scopes()

    def problem(self) -> str | None:
        """Why the server is not guarded, or ``None`` when it is (or cannot be told)."""
        wrap_problem = self._wrap_problem()
        if wrap_problem is None:
            return None
        interceptors = self._interceptors()
        found = set() if interceptors is None else self._flavors(interceptors, set())
        if self.flavor in found:
            return None
        want = INTERCEPTOR_NAME[self.flavor]
        if found:
            kind = "a grpc.aio" if self.flavor == AIO else "a grpcio (sync)"
            got = INTERCEPTOR_NAME[found.pop()]
            return f"gets {got}: {kind} server needs {want}(guard)"
        if wrap_problem:
            return wrap_problem
        if interceptors is not None and self._opaque(interceptors, set()):
            return None
        if interceptors is None and any(k.arg is None for k in self.call.keywords):
            return None  # **kwargs may carry them
        return (
            f"is not wired with memcontract: pass interceptors=[{want}(guard)] "
            "or wrap it with wrap_server(server, guard)"
        )

    # -- wrap_server -----------------------------------------------------------------------

    def _wrap_problem(self) -> str | None:
        """``None`` when wrap_server guards the server, else why not ("" when not applied)."""
        parent = self.ctx.parent(self.call)
        if isinstance(parent, ast.Call) and self._is_wrap_of(parent, self.call):
            return self._wrap_use(parent, None)
        target = self._stored_in()
        if target is None:
            return ""
        text = ast.unparse(target)
        problems = []
        for node in self._search(target):
            if isinstance(node, ast.Call) and self._is_wrap_of(node, target, text):
                problem = self._wrap_use(node, text)
                if problem is None:
                    return None
                problems.append(problem)
        return problems[0] if problems else ""

    def _is_wrap_of(self, call: ast.Call, server: ast.expr, text: str | None = None) -> bool:
        if self.ctx.imports.callee(call) != WRAP_SERVER:
            return False
        arg = (
            call.args[0]
            if call.args
            else next((k.value for k in call.keywords if k.arg == "server"), None)
        )
        if arg is None:
            return False
        return arg is server if text is None else ast.unparse(arg) == text

    def _wrap_use(self, wrap: ast.Call, raw: str | None) -> str | None:
        """``None`` when the wrapper ``wrap`` returns is what services are added to."""
        parent = self.ctx.parent(wrap)
        if isinstance(parent, ast.Expr):
            return "is passed to wrap_server, but the wrapped server it returns is discarded"
        if raw is None or not isinstance(parent, ast.Assign):
            return None
        if any(ast.unparse(t) == raw for t in parent.targets):
            # server = wrap_server(server, guard): guarded, unless services came first
            for node in self._search(parent.targets[0]):
                if _adds_service_to(node, raw) and _before(node, wrap):
                    return (
                        f"has services added before wrap_server (line {node.lineno}): "
                        "wrap_server guards services as they are added, so wrap it first"
                    )
            return None
        for node in self._search(parent.targets[0]):
            if _adds_service_to(node, raw):
                return (
                    f"is wrapped by wrap_server, but services are added to {raw}, "
                    "not to the server wrap_server returns"
                )
        return None

    def _stored_in(self) -> ast.expr | None:
        """The variable or attribute the server is assigned to, if any."""
        parent = self.ctx.parent(self.call)
        if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
            return parent.targets[0]
        if isinstance(parent, (ast.AnnAssign, ast.NamedExpr)):
            return parent.target
        return None

    def _search(self, target: ast.expr) -> Iterator[ast.AST]:
        """Where the server may be wrapped: the class (all its methods) for ``self.x``, else
        the function (or module) that holds the variable."""
        if isinstance(target, ast.Attribute):
            classes = [s for s in self.scopes if isinstance(s, ast.ClassDef)]
            if classes:
                return ast.walk(classes[-1])
        return _flow.walk_scope(self.scopes[-1] if self.scopes else self.ctx.source.tree)

    # -- interceptors ----------------------------------------------------------------------

    def _interceptors(self) -> ast.expr | None:
        for keyword in self.call.keywords:
            if keyword.arg == "interceptors":
                return keyword.value
        if len(self.call.args) > INTERCEPTORS_POSITION:
            return self.call.args[INTERCEPTORS_POSITION]
        return None

    def _flavors(self, expr: ast.expr, seen: set[str]) -> set[str]:
        """The memcontract interceptor flavors ``expr`` holds, following local names."""
        found: set[str] = set()
        for node in ast.walk(expr):
            if isinstance(node, ast.Call):
                flavor = INTERCEPTORS.get(self.ctx.imports.callee(node) or "")
                if flavor:
                    found.add(flavor)
            elif isinstance(node, ast.Name) and node.id not in seen:
                seen.add(node.id)
                scope = _flow.binding_scope(self.scopes, node.id)
                for value in _flow.assigned(scope, node.id) if scope else ():
                    found |= self._flavors(value, seen)
        return found

    def _opaque(self, expr: ast.expr, seen: set[str]) -> bool:
        """Whether ``expr``'s interceptors come from where the check cannot see them."""
        if isinstance(expr, ast.Constant):
            return False
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            return any(self._opaque(e.value, seen) for e in expr.elts if isinstance(e, ast.Starred))
        if isinstance(expr, ast.BinOp):
            return self._opaque(expr.left, seen) or self._opaque(expr.right, seen)
        if isinstance(expr, ast.IfExp):
            return self._opaque(expr.body, seen) or self._opaque(expr.orelse, seen)
        if _is_copy(expr):  # list(x), tuple(x)
            return bool(expr.args) and self._opaque(expr.args[0], seen)
        if isinstance(expr, ast.Name):
            return self._opaque_name(expr.id, seen)
        return True

    def _opaque_name(self, name: str, seen: set[str]) -> bool:
        if name in seen:
            return False
        seen.add(name)
        scope = _flow.binding_scope(self.scopes, name)
        if scope is None or name in _flow.parameters(scope):
            return True
        values = _flow.assigned(scope, name)
        return not values or any(self._opaque(v, seen) for v in values)


def _is_copy(expr: ast.expr) -> TypeGuard[ast.Call]:
    return (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Name)
        and expr.func.id in ("list", "tuple")
        and len(expr.args) <= 1
    )


#: grpc.Server's own methods that add services.
ADD_HANDLERS = ("add_generic_rpc_handlers", "add_registered_method_handlers")


def _before(node: ast.expr, other: ast.expr) -> bool:
    """Whether ``node`` starts before ``other`` in the source."""
    return (node.lineno, node.col_offset) < (other.lineno, other.col_offset)


def _adds_service_to(node: ast.AST, server: str) -> TypeGuard[ast.Call]:
    """Whether ``node`` adds services to ``server``: a generated
    ``add_*_to_server(servicer, server)`` call, or ``server.add_generic_rpc_handlers(...)``
    (or ``add_registered_method_handlers``)."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr in ADD_HANDLERS
        and ast.unparse(func.value) == server
    ):
        return True
    if len(node.args) != 2:
        return False
    name = (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else ""
    )
    return (
        name.startswith("add_")
        and name.endswith("_to_server")
        and ast.unparse(node.args[1]) == server
    )
