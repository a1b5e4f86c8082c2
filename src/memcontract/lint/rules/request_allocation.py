"""A servicer method allocates memory sized by request data (MC003, request-sized-allocation).

What: inside a method of a gRPC servicer class, an allocation whose size comes from the
request: ``bytearray(n)``, ``bytes(n)``, sequence repetition (``[0] * n``, ``b"x" * n``),
``list(range(n))`` and comprehensions over ``range(n)``, ``"".ljust(n)``-style padding,
``os.urandom(n)``, ``numpy.zeros(n)``-style arrays, ``.read(n)``, where ``n`` derives from the
request parameter; and ``.read()`` / ``.readlines()`` / ``.read_bytes()`` / ``.read_text()``
without a size, which read a whole stream or file into memory.

Why: one call can then allocate as much as the caller asks for, faster than the guard samples,
and take the process past its contract before any level is reached.

Example::

    class Inventory(pb_grpc.InventoryServicer):
        def Report(self, request, context):
            rows = [None] * request.rows                      # MC003
            rows = [None] * min(request.rows, MAX_ROWS)        # bounded: ok

A servicer class subclasses a generated ``...Servicer`` (or its name ends in ``Servicer``); its
public methods take ``(self, request, context)``, and the request is their second parameter.
Request data flows through local names, loops over it and calls given it
(``len(request.items)``); ``min(x, bound)`` bounds it when the bound is not request data, and
so does an early exit (``if n > MAX_ROWS: context.abort(...)``, ``if not 0 < n <= MAX: return``,
``raise``), wherever it is in the method. Checks made in another function are not seen:
suppress with the reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from ..engine import Context
from ..finding import Finding
from . import _flow

#: Builtins whose single argument is a size (or a sequence to copy).
SIZED_BUILTINS = frozenset({"bytearray", "bytes"})
#: Builtins that materialize an iterable.
MATERIALIZE = frozenset({"list", "tuple", "set", "frozenset", "sorted", "bytes", "bytearray"})
#: Functions whose first argument is a size.
SIZED_FUNCTIONS = frozenset(
    {"os.urandom", "secrets.token_bytes", "secrets.token_hex", "secrets.token_urlsafe"}
    | {f"numpy.{f}" for f in ("zeros", "ones", "empty", "full", "arange")}
)
#: Methods of str/bytes whose first argument is a width.
PADDING = frozenset({"ljust", "rjust", "center", "zfill"})
WHOLE_READS = frozenset({"read", "readlines", "read_bytes", "read_text"})
SIZED_READS = frozenset({"read", "readline", "readlines", "recv"})


class RequestAllocation:
    """MC003: an allocation in a servicer method sized by request data."""

    code: ClassVar[str] = "MC003"
    node_types: ClassVar[tuple[type[ast.AST], ...]] = (
        ast.Call,
        ast.BinOp,
        ast.ListComp,
        ast.SetComp,
        ast.DictComp,
    )

    def check(self, node: ast.expr, ctx: Context) -> Iterator[Finding]:
        """Report ``node`` when it allocates by request data inside a servicer method."""
        method = _servicer_method(ctx)
        if method is None:
            return
        data = ctx.cached("request-data", method, lambda: _request_data(method))
        what = _Allocation(ctx, data).describe(node)
        if what:
            yield ctx.finding(node, self.code, what)


def _servicer_method(ctx: Context) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The servicer method the current node is in (nested functions included), if any."""
    stack = ctx.stack
    for i in range(len(stack) - 1, 0, -1):
        fn, owner = stack[i], stack[i - 1]
        if (
            isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            and isinstance(owner, ast.ClassDef)
            and _is_servicer(owner)
            and not fn.name.startswith("_")
            and len(fn.args.posonlyargs + fn.args.args) >= 3
        ):
            return fn
    return None


def _is_servicer(cls: ast.ClassDef) -> bool:
    if cls.name.endswith("Servicer"):
        return True
    for base in cls.bases:
        name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
        if name.endswith("Servicer"):
            return True
    return False


@dataclass(frozen=True)
class _RequestData:
    """What is request data in one method.

    Attributes:
        names: local names holding request data (the request parameter first among them).
        checked: expressions (as written) that an early exit bounds, e.g. ``n`` after
            ``if n > MAX_ROWS: context.abort(...)``.
    """

    names: frozenset[str]
    checked: frozenset[str] = frozenset()

    def sizes(self, expr: ast.AST) -> bool:
        """Whether ``expr`` reads request data that nothing bounds."""
        todo = [expr]
        while todo:
            node = todo.pop()
            if self.checked and isinstance(node, ast.expr) and ast.unparse(node) in self.checked:
                continue
            if isinstance(node, ast.Name) and node.id in self.names:
                return True
            if isinstance(node, ast.Lambda) or self._is_bounded(node):
                continue
            todo.extend(ast.iter_child_nodes(node))
        return False

    def _is_bounded(self, node: ast.AST) -> bool:
        """``min(...)`` with an argument that is not request data (a constant, a setting)."""
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "min"
            and any(not self.sizes(a) for a in node.args)
        )


def _request_data(method: ast.FunctionDef | ast.AsyncFunctionDef) -> _RequestData:
    """The request parameter, what derives from it, and what the method checks before use."""
    request = (method.args.posonlyargs + method.args.args)[1].arg
    unchecked = _RequestData(_propagate(method, request, frozenset()))
    checked = frozenset(_checked(method, unchecked))
    if not checked:
        return unchecked
    return _RequestData(_propagate(method, request, checked), checked)


def _propagate(
    method: ast.FunctionDef | ast.AsyncFunctionDef, request: str, checked: frozenset[str]
) -> frozenset[str]:
    """The names request data flows into (flow-insensitive, to a fixed point)."""
    names = {request}
    changed = True
    while changed:
        changed = False
        data = _RequestData(frozenset(names), checked)
        for node in ast.walk(method):
            for targets, value in _bindings(node):
                if not data.sizes(value):
                    continue
                for target in targets:
                    for name in _flow.target_names(target):
                        if name not in names:
                            names.add(name)
                            changed = True
    return frozenset(names)


def _bindings(node: ast.AST) -> Iterator[tuple[list[ast.expr], ast.expr]]:
    """(targets, value) of every way ``node`` binds names."""
    if isinstance(node, ast.Assign):
        yield node.targets, node.value
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
        if node.value is not None:
            yield [node.target], node.value
    elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        yield [node.target], node.iter
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        for item in node.items:
            if item.optional_vars is not None:
                yield [item.optional_vars], item.context_expr


# -- early exits: ``if n > LIMIT: abort`` bounds n (wherever the check is in the method) -----

_GREATER: tuple[type[ast.cmpop], ...] = (ast.Gt, ast.GtE)  # n > LIMIT: true when n is large
_LESS: tuple[type[ast.cmpop], ...] = (ast.Lt, ast.LtE)  # LIMIT < n: true when n is large


def _checked(method: ast.AST, data: _RequestData) -> Iterator[str]:
    """Request-data expressions an ``if`` compares with a bound and exits on when too large."""
    for node in ast.walk(method):
        if isinstance(node, ast.If) and _exits(node.body):
            yield from _too_large(node.test, data, negated=False)


def _exits(body: list[ast.stmt]) -> bool:
    """Whether ``body`` ends by leaving: return, raise, continue, break, ``context.abort()``."""
    last = body[-1]
    if isinstance(last, (ast.Return, ast.Raise, ast.Continue, ast.Break)):
        return True
    call = last.value if isinstance(last, ast.Expr) else None
    if isinstance(call, ast.Await):
        call = call.value
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "abort"
    )


def _too_large(test: ast.expr, data: _RequestData, *, negated: bool) -> Iterator[str]:
    """The expressions for which ``test`` is true whenever they are too large."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        yield from _too_large(test.operand, data, negated=not negated)
    elif isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And if negated else ast.Or):
        for value in test.values:  # one disjunct that is true when too large is enough
            yield from _too_large(value, data, negated=negated)
    elif isinstance(test, ast.Compare) and (negated or len(test.ops) == 1):
        operands = [test.left, *test.comparators]
        for left, op, right in zip(operands, test.ops, operands[1:], strict=False):
            large_left, large_right = (_LESS, _GREATER) if negated else (_GREATER, _LESS)
            if isinstance(op, large_left) and _bounds(right, left, data):
                yield ast.unparse(left)
            elif isinstance(op, large_right) and _bounds(left, right, data):
                yield ast.unparse(right)


def _bounds(bound: ast.expr, subject: ast.expr, data: _RequestData) -> bool:
    return data.sizes(subject) and not data.sizes(bound)


class _Allocation:
    def __init__(self, ctx: Context, data: _RequestData) -> None:
        self.ctx = ctx
        self.data = data

    def sized(self, expr: ast.expr) -> bool:
        return self.data.sizes(expr)

    def describe(self, node: ast.expr) -> str | None:
        """What ``node`` allocates by request data, or ``None``."""
        if isinstance(node, ast.BinOp):
            return self._repetition(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp)):
            for gen in node.generators:
                if self._is_range_by_request(gen.iter):
                    return _message("a comprehension over range(n)", gen.iter)
        return None

    def _repetition(self, node: ast.BinOp) -> str | None:
        if not isinstance(node.op, ast.Mult):
            return None
        for seq, count in ((node.left, node.right), (node.right, node.left)):
            if _is_sequence(seq) and self.sized(count):
                return _message("sequence repetition", count)
        return None

    def _call(self, node: ast.Call) -> str | None:
        func = node.func
        arg = node.args[0] if node.args else None
        name = func.id if isinstance(func, ast.Name) else None
        if name in MATERIALIZE and arg is not None and self._is_range_by_request(arg):
            return _message(f"{name}(range(n))", arg)
        if name in SIZED_BUILTINS and arg is not None and self.sized(arg):
            return _message(f"{name}(n)", arg)
        qualname = self.ctx.imports.callee(node)
        if qualname in SIZED_FUNCTIONS and arg is not None and self.sized(arg):
            return _message(f"{qualname}(n)", arg)
        if isinstance(func, ast.Attribute):
            return self._method(func.attr, node, arg)
        return None

    def _method(self, attr: str, node: ast.Call, arg: ast.expr | None) -> str | None:
        if attr in WHOLE_READS and (arg is None or _is_unbounded_size(arg)) and not node.keywords:
            return (
                f".{attr}() without a size reads a whole stream or file into memory: "
                "read in bounded chunks"
            )
        if attr in SIZED_READS and arg is not None and self.sized(arg):
            return _message(f".{attr}(n)", arg)
        if attr in PADDING and arg is not None and self.sized(arg):
            return _message(f".{attr}(n)", arg)
        return None

    def _is_range_by_request(self, expr: ast.expr) -> bool:
        if isinstance(expr, ast.GeneratorExp):
            return any(self._is_range_by_request(g.iter) for g in expr.generators)
        return (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Name)
            and expr.func.id == "range"
            and any(self.sized(a) for a in expr.args)
        )


def _is_sequence(expr: ast.expr) -> bool:
    """A literal list, tuple, str or bytes, or a call that builds one."""
    if isinstance(expr, (ast.List, ast.Tuple, ast.ListComp, ast.JoinedStr)):
        return True
    if isinstance(expr, ast.Constant):
        return isinstance(expr.value, str | bytes)
    return (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Name)
        and expr.func.id in ("list", "tuple", "bytes", "bytearray", "str")
    )


def _is_unbounded_size(arg: ast.expr) -> bool:
    """``-1`` or ``None``: "read everything"."""
    if isinstance(arg, ast.Constant) and arg.value is None:
        return True
    return (
        isinstance(arg, ast.UnaryOp)
        and isinstance(arg.op, ast.USub)
        and isinstance(arg.operand, ast.Constant)
        and arg.operand.value == 1
    )


def _message(what: str, size: ast.expr) -> str:
    return (
        f"{what} sized by request data ({ast.unparse(size)}): bound it with "
        "min(n, LIMIT) or reject larger requests before allocating"
    )
