"""What a name in a module stands for: its imports turned into qualified names.

``qualname`` answers the question every rule asks ("is this call ``grpc.aio.server``?") for
the ways a module can spell it: ``import grpc``, ``import grpc.aio as aio``, ``from grpc import
aio``, ``from memcontract.interceptors import server_interceptor as si``, star imports of the
modules the rules know.

>>> tree = ast.parse("from grpc import aio as g\\ng.server()")
>>> imports = Imports.of(tree)
>>> imports.qualname(tree.body[1].value.func)
'grpc.aio.server'
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

#: Names a star import of these modules binds, for the names the rules look for.
_STAR_EXPORTS = {
    "memcontract": ("Contract",),
    "memcontract.contract": ("Contract",),
    "memcontract.interceptors": ("server_interceptor", "aio_server_interceptor", "wrap_server"),
    "grpc": ("server", "aio"),
    "grpc.aio": ("server",),
}

#: Spellings of one object, mapped to the name the rules use.
_ALIASES = {
    "memcontract.contract.Contract": "memcontract.Contract",
    "memcontract.interceptors._wrap.wrap_server": "memcontract.interceptors.wrap_server",
}


@dataclass
class Imports:
    """The module's import bindings: local name -> qualified name."""

    bound: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, tree: ast.Module) -> Imports:
        """Collect every import of the module, at any depth (functions included).

        One binding per name: a module that imports two things under one name is rare
        enough that the last import winning is an acceptable approximation.
        """
        imports = cls()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        imports.bound[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        imports.bound[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name == "*":
                        for name in _STAR_EXPORTS.get(node.module, ()):
                            imports.bound[name] = f"{node.module}.{name}"
                    else:
                        imports.bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        return imports

    def qualname(self, expr: ast.expr) -> str | None:
        """The qualified name ``expr`` refers to through the imports, or ``None``."""
        if isinstance(expr, ast.Name):
            name = self.bound.get(expr.id)
        elif isinstance(expr, ast.Attribute):
            base = self.qualname(expr.value)
            name = None if base is None else f"{base}.{expr.attr}"
        else:
            return None
        return None if name is None else _ALIASES.get(name, name)

    def callee(self, node: ast.AST) -> str | None:
        """The qualified name of the function ``node`` calls, when it is a call."""
        return self.qualname(node.func) if isinstance(node, ast.Call) else None
