"""Where a local name's value comes from, within one scope (flow-insensitive).

The rules follow a name back to what was assigned to it (``opts = [...]``, ``opts += [...]``,
``opts.append(x)``) in the function, class or module that binds it, without entering nested
functions. Order is ignored: every assignment in the scope counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def walk_scope(scope: ast.AST) -> Iterator[ast.AST]:
    """Every node inside ``scope`` that belongs to it (nested functions and classes excluded)."""
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, _NESTED):
            todo.extend(ast.iter_child_nodes(node))


def target_names(target: ast.AST) -> Iterator[str]:
    """The plain names an assignment target binds (``a``, ``a, (b, *c)``)."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from target_names(target.value)


def assigned(scope: ast.AST, name: str) -> list[ast.expr]:
    """The values given to ``name`` in ``scope``, as sequences where the name is a list.

    ``name.append(x)`` and ``name.insert(i, x)`` give ``[x]``; ``name.extend(xs)`` and
    ``name += xs`` give ``xs``; an unpacking assignment gives the whole value.
    """
    values: list[ast.expr] = []
    for node in walk_scope(scope):
        if isinstance(node, ast.Assign):
            if any(name in target_names(t) for t in node.targets):
                values.append(node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            if node.value is not None and name in target_names(node.target):
                values.append(node.value)
        elif isinstance(node, ast.NamedExpr):
            if node.target.id == name:
                values.append(node.value)
        elif isinstance(node, ast.Call):
            values.extend(_mutation(node, name))
    return values


def _mutation(call: ast.Call, name: str) -> list[ast.expr]:
    func = call.func
    if not (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == name
        and call.args
    ):
        return []
    if func.attr == "append":
        return [ast.List(elts=[call.args[0]], ctx=ast.Load())]
    if func.attr == "insert" and len(call.args) == 2:
        return [ast.List(elts=[call.args[1]], ctx=ast.Load())]
    if func.attr == "extend":
        return [call.args[0]]
    return []


def parameters(fn: ast.AST) -> list[str]:
    """The parameter names of a function or lambda, in order (empty for anything else)."""
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return []
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    return names


def binding_scope(scopes: Sequence[ast.AST], name: str) -> ast.AST | None:
    """The innermost of ``scopes`` (outermost first) that binds ``name``, skipping classes for
    names used inside their methods (Python's rule), or ``None``."""
    innermost = True
    for scope in reversed(scopes):
        if isinstance(scope, ast.ClassDef) and not innermost:
            continue
        innermost = False
        if name in parameters(scope) or assigned(scope, name) or _imports(scope, name):
            return scope
    return None


def _imports(scope: ast.AST, name: str) -> bool:
    for node in walk_scope(scope):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if (alias.asname or alias.name.split(".")[0]) == name:
                    return True
    return False
