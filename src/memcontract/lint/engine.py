"""Parse a file once and hand each node to the rules that asked for its type.

A rule declares the node types it inspects (``node_types``) and a ``check`` that yields
findings for one node. The engine walks the tree once, keeping the stack of enclosing nodes and
a parent map that rules use to look around (the enclosing function or class, the statement a
call sits in), and a per-file cache for analyses a rule wants to compute once per function.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from .finding import Finding
from .names import Imports
from .source import Source

T = TypeVar("T")

#: Nodes that bind names of their own.
SCOPES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass
class Context:
    """What a rule sees of the file being checked.

    Attributes:
        source: the file (path, text, tree).
        imports: the module's import bindings.
        roots: directories a relative path in the code may be relative to (the working
            directory and the paths given on the command line).
        stack: the nodes enclosing the current one, outermost first.
    """

    source: Source
    imports: Imports
    roots: Sequence[Path]
    stack: list[ast.AST] = field(default_factory=list)
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    _cache: dict[tuple[str, ast.AST], Any] = field(default_factory=dict)

    def finding(self, node: ast.expr | ast.stmt, code: str, message: str) -> Finding:
        """A finding at ``node``'s start, its column converted to characters."""
        column = self.source.column(node.lineno, node.col_offset)
        return Finding(self.source.path, node.lineno, column, code, message)

    def parent(self, node: ast.AST) -> ast.AST | None:
        """The node that contains ``node`` (``None`` for the module)."""
        return self.parents.get(node)

    def scopes(self) -> list[ast.AST]:
        """The module, classes, functions and lambdas around the current node, outermost first."""
        return [n for n in self.stack if isinstance(n, SCOPES)]

    def cached(self, key: str, node: ast.AST, compute: Callable[[], T]) -> T:
        """``compute()`` once per file for (``key``, ``node``)."""
        slot = (key, node)
        if slot not in self._cache:
            self._cache[slot] = compute()
        value: T = self._cache[slot]
        return value


class Rule(Protocol):
    """A check over nodes of some types; one per module under :mod:`memcontract.lint.rules`."""

    code: ClassVar[str]
    node_types: ClassVar[tuple[type[ast.AST], ...]]

    def check(self, node: Any, ctx: Context) -> Iterable[Finding]:
        """Findings for one node of one of :attr:`node_types`."""
        ...


def check_tree(source: Source, rules: Sequence[Rule], roots: Sequence[Path]) -> list[Finding]:
    """Run ``rules`` over the file's tree (which must parse) in one walk; findings unsorted."""
    tree = source.tree
    ctx = Context(source, Imports.of(tree), roots)
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            ctx.parents[child] = parent
    dispatch: dict[type[ast.AST], list[Rule]] = {}
    for rule in rules:
        for node_type in rule.node_types:
            dispatch.setdefault(node_type, []).append(rule)
    return _walk(tree, ctx, dispatch)


def _walk(tree: ast.AST, ctx: Context, dispatch: dict[type[ast.AST], list[Rule]]) -> list[Finding]:
    # Iterative: a long chain like ``a + a + ... + a`` nests deeper than Python's recursion limit.
    findings: list[Finding] = []
    todo: list[tuple[ast.AST, bool]] = [(tree, False)]
    while todo:
        node, leaving = todo.pop()
        if leaving:
            ctx.stack.pop()
            continue
        for rule in dispatch.get(type(node), ()):
            findings.extend(rule.check(node, ctx))
        ctx.stack.append(node)
        todo.append((node, True))
        todo.extend((child, False) for child in reversed(list(ast.iter_child_nodes(node))))
    return findings
