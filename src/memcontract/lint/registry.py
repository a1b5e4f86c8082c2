"""The table of lint codes: stable, never reused.

A code, once released, keeps its meaning for good. A rule that is withdrawn keeps its row with
``removed=True`` and a rule that is renamed or merged gets ``redirect`` to the code that replaced
it, so that an old suppression comment still means what it said. Each rule's documentation
(what it checks, why, an example) lives in its own module under :mod:`memcontract.lint.rules`,
written once; the table reads it from there.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from functools import cache


class Severity(enum.Enum):
    """How a finding is shown to code-scanning tools (SARIF ``level``)."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Code:
    """One row of the table.

    Attributes:
        code: ``MC`` and three digits, e.g. ``MC003``.
        name: a short kebab-case name, e.g. ``request-sized-allocation``.
        module: the module under ``memcontract.lint.rules`` whose docstring documents it.
        severity: the SARIF level of its findings.
        suppressible: whether ``# memcontract: ignore[CODE] reason`` can silence it.
        removed: the code is withdrawn (kept so that it is never reused).
        redirect: the code that replaced this one, if any.
    """

    code: str
    name: str
    module: str
    severity: Severity = Severity.ERROR
    suppressible: bool = True
    removed: bool = False
    redirect: str | None = None

    @property
    def doc(self) -> str:
        """The rule's documentation: its module's docstring (summary line, then details)."""
        return _module_doc(self.module)

    @property
    def summary(self) -> str:
        """The documentation's first line without its ``(CODE, name)`` tag."""
        first = self.doc.strip().splitlines()[0]
        return first.removesuffix(f" ({self.code}, {self.name}).")


CODES: tuple[Code, ...] = (
    Code("MC001", "unwired-server", "unwired_server"),
    Code("MC002", "contract-reference", "contract_reference"),
    Code("MC003", "request-sized-allocation", "request_allocation", Severity.WARNING),
    Code("MC004", "invalid-contract-file", "contract_file"),
    Code("MC900", "syntax-error", "syntax_error", suppressible=False),
    Code("MC901", "suppression-without-reason", "suppression_reason", suppressible=False),
    Code("MC902", "unused-suppression", "unused_suppression", Severity.WARNING, suppressible=False),
)

BY_CODE: dict[str, Code] = {c.code: c for c in CODES}


def resolve(code: str) -> Code | None:
    """The row in force for ``code``, following redirects; ``None`` for an unknown code."""
    row = BY_CODE.get(code)
    while row is not None and row.redirect is not None:
        row = BY_CODE.get(row.redirect)
    return row


@cache
def _module_doc(module: str) -> str:
    mod = importlib.import_module(f"{__package__}.rules.{module}")
    return mod.__doc__ or ""
