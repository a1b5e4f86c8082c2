"""``memcontract lint``: static checks that gRPC services are built with their contract.

Python code is checked with :mod:`ast` (servers wired with memcontract, literal contract
references, allocations sized by request data in servicer methods) and every contract file
found is validated. The codes are in :mod:`memcontract.lint.registry`, one rule per module in
:mod:`memcontract.lint.rules`.

>>> import pathlib, tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     _ = pathlib.Path(d, "svc.py").write_text("import grpc\\nserver = grpc.server(None)\\n")
...     [(f.code, f.line, f.column) for f in lint_paths([d]).findings]
[('MC001', 2, 10)]
"""

from __future__ import annotations

import os
import sys
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TextIO

from . import output, suppress
from .discover import discover
from .engine import check_tree
from .errors import LintUsageError
from .finding import Finding
from .rules import AST_RULES, ContractFile
from .sarif import to_sarif
from .source import Source

__all__ = ["FORMATS", "Finding", "LintResult", "LintUsageError", "lint_paths", "run"]

FORMATS = ("text", "json", "sarif")


@dataclass(frozen=True)
class LintResult:
    """What one run found: the findings (sorted) and how many files it checked."""

    findings: list[Finding]
    files: int


def lint_paths(paths: Sequence[str], *, exclude: Sequence[str] = ()) -> LintResult:
    """Check the Python and contract files under ``paths``.

    Raises:
        LintUsageError: a path does not exist.
    """
    files = discover(paths, exclude)
    roots = [Path(p) if Path(p).is_dir() else Path(p).parent for p in paths]
    findings: list[Finding] = []
    for path in files.python:
        findings.extend(_lint_python(path, roots))
    for path in files.contracts:
        findings.extend(_lint_contract(path))
    return LintResult(sorted(findings), len(files.python) + len(files.contracts))


def run(
    paths: Sequence[str],
    *,
    output_format: str = "text",
    exclude: Sequence[str] = (),
    out: TextIO = sys.stdout,
) -> int:
    """Lint ``paths``, write the report to ``out``; the exit status: 0 clean, 1 findings.

    Raises:
        LintUsageError: a path does not exist or the format is unknown (the CLI exits 2).
    """
    if output_format not in FORMATS:
        raise LintUsageError(f"unknown format {output_format!r} (choose from {', '.join(FORMATS)})")
    result = lint_paths(paths, exclude=exclude)
    if output_format == "text":
        output.write_text(result.findings, result.files, out)
    elif output_format == "json":
        output.write_json(output.to_json(result.findings), out)
    else:
        log = to_sarif(result.findings, tool_version=_version(), root=Path.cwd())
        output.write_json(log, out)
    return 1 if result.findings else 0


def _display(path: Path) -> str:
    """The path relative to the working directory when it is inside it."""
    absolute = path.resolve()
    cwd = Path.cwd().resolve()
    return os.path.relpath(absolute, cwd) if absolute.is_relative_to(cwd) else str(absolute)


def _lint_python(path: Path, roots: Sequence[Path]) -> list[Finding]:
    display = _display(path)
    try:
        with tokenize.open(path) as f:
            text = f.read()
    except (OSError, SyntaxError, UnicodeDecodeError) as err:
        return [Finding(display, 1, 1, "MC900", f"cannot read the file: {err}")]
    source = Source(display, text)
    try:
        source.tree  # noqa: B018 - parse now, so that a syntax error is reported here
    except RecursionError:
        return [Finding(display, 1, 1, "MC900", "too deeply nested for Python's parser")]
    except (SyntaxError, ValueError) as err:
        line = getattr(err, "lineno", None) or 1
        column = getattr(err, "offset", None) or 1
        message = getattr(err, "msg", None) or str(err)
        return [Finding(display, line, column, "MC900", f"syntax error: {message}")]
    findings = check_tree(source, AST_RULES, roots)
    return suppress.apply(findings, suppress.python_directives(text), display)


def _lint_contract(path: Path) -> list[Finding]:
    display = _display(path)
    findings = ContractFile().check(path, display)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return findings
    return suppress.apply(findings, suppress.yaml_directives(text), display)


def _version() -> str:
    try:
        return metadata.version("memcontract")
    except metadata.PackageNotFoundError:
        return "0+unknown"
