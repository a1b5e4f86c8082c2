"""Renderers of one frozen :class:`~memcontract.loadtest.result.Report`: JSON (the stable,
mergeable form), CSV (per second), HTML (one self-contained page) and the terminal summary."""

from __future__ import annotations

from pathlib import Path

from ..result import Report
from . import csvfmt, html, jsonfmt


def write_all(report: Report, name: str) -> list[Path]:
    """Write ``NAME.json``, ``NAME.csv`` and ``NAME.html``; return their paths."""
    paths = [Path(f"{name}.{ext}") for ext in ("json", "csv", "html")]
    for path, writer in zip(paths, (jsonfmt.write, csvfmt.write, html.write), strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(report, path)
    return paths
