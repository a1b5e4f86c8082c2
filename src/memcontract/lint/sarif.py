"""Findings as a SARIF 2.1.0 log, the format code-scanning tools ingest.

As ruff does: one run, the driver lists only the rules that fired (each with its documentation),
results point at their rule by id and index, and file locations are URIs relative to the
working directory (``originalUriBaseIds["%SRCROOT%"]``). Columns are characters, as SARIF's
default ``columnKind`` (``utf16CodeUnits``) approximates for the text this linter reads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .finding import Finding
from .registry import BY_CODE

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
VERSION = "2.1.0"
SRCROOT = "%SRCROOT%"
INFORMATION_URI = "https://github.com/memcontract/memcontract#lint"


def to_sarif(findings: Sequence[Finding], *, tool_version: str, root: Path) -> dict[str, Any]:
    """The SARIF log of ``findings``; paths relative to ``root`` become relative URIs."""
    codes = sorted({f.code for f in findings})
    index = {code: i for i, code in enumerate(codes)}
    return {
        "$schema": SCHEMA,
        "version": VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "memcontract-lint",
                        "informationUri": INFORMATION_URI,
                        "version": tool_version,
                        "rules": [_rule(code) for code in codes],
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"uri": root.resolve().as_uri() + "/"}},
                "results": [_result(f, index[f.code], root) for f in findings],
            }
        ],
    }


def _rule(code: str) -> dict[str, Any]:
    row = BY_CODE[code]
    return {
        "id": row.code,
        "name": row.name,
        "shortDescription": {"text": row.summary},
        "fullDescription": {"text": row.doc.strip()},
        "help": {"text": row.doc.strip()},
        "defaultConfiguration": {"level": row.severity.value},
    }


def _result(finding: Finding, rule_index: int, root: Path) -> dict[str, Any]:
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": finding.rule.severity.value,
        "message": {"text": finding.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact(finding.path, root),
                    "region": {"startLine": finding.line, "startColumn": finding.column},
                }
            }
        ],
    }


def _artifact(path: str, root: Path) -> dict[str, Any]:
    absolute = Path(path).resolve()
    root = root.resolve()
    if absolute.is_relative_to(root):
        relative = os.path.relpath(absolute, root).replace(os.sep, "/")
        return {"uri": quote(relative), "uriBaseId": SRCROOT}
    return {"uri": absolute.as_uri()}
