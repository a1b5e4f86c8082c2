"""The per-second CSV (``NAME.csv``): one row per second of the run, one column per status.

Columns: ``second, unix, sent, answered, late, dropped, p50_ms, p99_ms, max_ms,
usage_percent, level, loop_lag_ms, cpu_percent`` (the last two: the harness itself), then the
count of each status code seen in the run (``OK``, ...).
Empty cells mean "nothing measured in that second".
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..result import Report

FIXED = (
    "second",
    "unix",
    "sent",
    "answered",
    "late",
    "dropped",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "usage_percent",
    "level",
    "loop_lag_ms",
    "cpu_percent",
)


def write(report: Report, path: str | Path) -> None:
    """Write the timeline of ``report`` to ``path``."""
    codes = sorted({code for second in report.timeline for code in second.codes})
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*FIXED, *codes])
        for s in report.timeline:
            fixed = [
                s.second,
                s.unix,
                s.sent,
                s.answered,
                s.late,
                s.dropped,
                _cell(s.p50_ms),
                _cell(s.p99_ms),
                _cell(s.max_ms),
                _cell(s.usage_percent),
                "" if s.level is None else s.level,
                _cell(s.loop_lag_ms),
                _cell(s.cpu_percent),
            ]
            writer.writerow([*fixed, *(s.codes.get(code, 0) for code in codes)])


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
