"""Findings as text (one line each, ``path:line:column: CODE message``) and as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from .finding import Finding


def write_text(findings: Sequence[Finding], files: int, out: TextIO) -> None:
    """One line per finding, then a summary line."""
    for f in findings:
        out.write(f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}\n")
    checked = f"{files} file{'' if files == 1 else 's'} checked"
    if findings:
        n = len(findings)
        out.write(f"Found {n} finding{'' if n == 1 else 's'} ({checked}).\n")
    else:
        out.write(f"All checks passed ({checked}).\n")


def to_json(findings: Sequence[Finding]) -> list[dict[str, object]]:
    """A JSON array: one object per finding (code, name, severity, path, line, column, message)."""
    return [
        {
            "code": f.code,
            "name": f.rule.name,
            "severity": f.rule.severity.value,
            "path": f.path,
            "line": f.line,
            "column": f.column,
            "message": f.message,
        }
        for f in findings
    ]


def write_json(data: object, out: TextIO) -> None:
    """``data`` as indented JSON and a newline."""
    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")
