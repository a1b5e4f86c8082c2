"""A literal contract reference does not resolve (MC002, contract-reference).

What: ``Contract.load(FILE, module=NAME)`` whose arguments are literals names a contract file
that exists and validates, and a module that file declares. ``FILE`` may be a string, a
``Path("...")``, or built from ``__file__`` (``Path(__file__).parent / "x.yaml"``,
``os.path.join(os.path.dirname(__file__), "x.yaml")``), directly or through a name bound once
to it. A relative path is looked up beside the source file, then in the working directory and
the directories being linted.

Why: a service whose contract is missing, invalid or lacks its module fails when it starts, in
production; the linter says so at review time, with ``contract check``'s message.

Example::

    Contract.load("memory_contract.yaml", module="inventroy")
    # MC002 memory_contract.yaml:2: modules: no module named 'inventroy'
    #       (did you mean 'inventory'?); modules: inventory
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from ...contract import Contract
from ...errors import ContractError
from ..engine import Context
from ..finding import Finding
from . import _flow

LOADERS = frozenset({"memcontract.Contract.load"})


class ContractReference:
    """MC002: ``Contract.load`` with literal arguments that do not resolve."""

    code: ClassVar[str] = "MC002"
    node_types: ClassVar[tuple[type[ast.AST], ...]] = (ast.Call,)

    def check(self, node: ast.Call, ctx: Context) -> Iterator[Finding]:
        """Report a literal ``Contract.load`` whose file or module does not resolve."""
        if ctx.imports.callee(node) not in LOADERS:
            return
        path_arg = _argument(node, 0, "path")
        module_arg = _argument(node, 1, "module")
        if path_arg is None:
            return
        scopes = ctx.scopes()
        written = _StaticPath(ctx, scopes).evaluate(path_arg)
        if written is None:
            return
        module = _literal_module(module_arg)
        found = _locate(written, ctx)
        if found is None:
            places = (
                ", ".join(str(d) for d in _search_dirs(ctx)) if not written.is_absolute() else ""
            )
            where = f" (looked in {places})" if places else ""
            message = f"contract file {str(written)!r} not found{where}"
            yield ctx.finding(path_arg, self.code, message)
            return
        found = _relative(found)
        try:
            Contract.check_file(found)
        except ContractError as err:
            yield ctx.finding(path_arg, self.code, f"invalid contract: {err}")
            return
        if module is None or module_arg is None:
            return
        try:
            Contract.load(found, module=module)
        except ContractError as err:
            yield ctx.finding(module_arg, self.code, f"{err}")


def _argument(call: ast.Call, position: int, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return call.args[position] if len(call.args) > position else None


def _literal_module(arg: ast.expr | None) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


def _relative(path: Path) -> Path:
    """``path`` relative to the working directory when inside it (for messages)."""
    cwd = Path.cwd()
    return path.relative_to(cwd) if path.is_relative_to(cwd) else path


def _search_dirs(ctx: Context) -> list[Path]:
    here = Path(ctx.source.path).resolve().parent
    dirs = [here, Path.cwd(), *(Path(r).resolve() for r in ctx.roots)]
    return list(dict.fromkeys(dirs))


def _locate(written: Path, ctx: Context) -> Path | None:
    if written.is_absolute():
        return written if written.is_file() else None
    for directory in _search_dirs(ctx):
        candidate = directory / written
        if candidate.is_file():
            return candidate
    return None


class _StaticPath:
    """Evaluate the path expressions contract loading is usually written with."""

    def __init__(self, ctx: Context, scopes: list[ast.AST]) -> None:
        self.ctx = ctx
        self.scopes = scopes
        self.here = Path(ctx.source.path).resolve()
        self.seen: set[str] = set()

    def evaluate(self, expr: ast.expr) -> Path | None:
        """The path ``expr`` denotes, or ``None`` when it is not static."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return Path(expr.value)
        if isinstance(expr, ast.Name):
            return self._name(expr.id)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            left, right = self.evaluate(expr.left), self.evaluate(expr.right)
            return None if left is None or right is None else left / right
        if isinstance(expr, ast.Attribute):
            return self._attribute(expr)
        if isinstance(expr, ast.Call):
            return self._call(expr)
        return None

    def _name(self, name: str) -> Path | None:
        if name == "__file__":
            return self.here
        if name in self.seen:
            return None
        self.seen.add(name)
        scope = _flow.binding_scope(self.scopes, name)
        values = _flow.assigned(scope, name) if scope is not None else []
        if scope is None or len(values) != 1 or name in _flow.parameters(scope):
            return None
        return self.evaluate(values[0])

    def _attribute(self, expr: ast.Attribute) -> Path | None:
        if expr.attr == "parent":
            base = self.evaluate(expr.value)
            return None if base is None else base.parent
        return None

    def _call(self, call: ast.Call) -> Path | None:
        qualname = self.ctx.imports.callee(call)
        args = [self.evaluate(a) for a in call.args]
        if any(a is None for a in args) or call.keywords:
            return None
        paths = [a for a in args if a is not None]
        if qualname in ("pathlib.Path", "pathlib.PurePath") and len(paths) >= 1:
            return Path(*paths)
        if qualname == "os.path.join" and paths:
            return Path(os.path.join(*paths))
        if qualname in ("os.path.dirname",) and len(paths) == 1:
            return paths[0].parent
        if qualname in ("os.path.abspath", "os.path.realpath") and len(paths) == 1:
            return paths[0]
        if isinstance(call.func, ast.Attribute) and not call.args:
            base = self.evaluate(call.func.value)
            if base is not None and call.func.attr in ("resolve", "absolute", "expanduser"):
                return base
        if isinstance(call.func, ast.Attribute) and call.func.attr == "joinpath":
            base = self.evaluate(call.func.value)
            return None if base is None else base.joinpath(*paths)
        if isinstance(call.func, ast.Attribute) and call.func.attr == "with_name" and paths:
            base = self.evaluate(call.func.value)
            return None if base is None else base.with_name(str(paths[0]))
        return None
