"""The summary printed on the terminal at the end of a run."""

from __future__ import annotations

from ..metrics import LATE_MS
from ..result import QUANTILES, Latency, Report

_HEAD = "".join(f"{name:>10}" for name, _ in QUANTILES) + f"{'max':>10}"


def _row(label: str, count: int, latency: Latency) -> str:
    cells = "".join(f"{latency.quantiles[name]:>10.2f}" for name, _ in QUANTILES)
    return f"  {label:<22}{count:>10}{cells}{latency.max:>10.2f}"


def render(report: Report) -> str:
    """A few lines: what ran, totals and rates, latency per status (ms), errors, memory."""
    c = report.config
    load = (
        f"schedule {c.get('schedule')}"
        if c.get("mode") == "open"
        else f"concurrency {c.get('concurrency')}"
    )
    lines = [
        f"loadtest {c.get('target')} {c.get('method')}: {c.get('mode')} loop, {load}, "
        f"{c.get('connections')} connection(s), {c.get('workers')} worker(s)",
        f"  {report.duration_s:.1f} s: sent {report.sent} ({report.rate_sent:.1f}/s), "
        f"answered {report.answered} ({report.rate_answered:.1f}/s), late {report.late} "
        f"(>{LATE_MS:g} ms), dropped {report.dropped}, out of range {report.out_of_range}",
        f"  {'latency ms':<22}{'count':>10}{_HEAD}",
    ]
    if report.overall is not None:
        lines.append(_row("all", report.answered, report.overall))
    lines += [_row(s.code, s.count, s.latency) for s in report.statuses]
    for error in report.errors[:10]:
        lines.append(f"  error {error.code} x{error.count}: {error.details}")
    levels = [s.level for s in report.timeline if s.level is not None]
    usages = [s.usage_percent for s in report.timeline if s.usage_percent is not None]
    if levels and usages:
        lines.append(
            f"  target memory: usage {min(usages):.1f}%..{max(usages):.1f}%, "
            f"peak level {max(levels)}"
        )
    return "\n".join(lines)
