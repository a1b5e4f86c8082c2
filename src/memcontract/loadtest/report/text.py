"""The summary printed on the terminal at the end of a run.

Warnings about the harness itself come first (k6 puts failed thresholds where the eye lands):
a reader must know that latencies include the harness's delay before reading them.
"""

from __future__ import annotations

from ..metrics import LATE_MS
from ..result import QUANTILES, Latency, Report, SelfCheck

_HEAD = "".join(f"{name:>10}" for name, _ in QUANTILES) + f"{'max':>10}"
ERRORS_SHOWN = 10


def _row(label: str, count: int, latency: Latency) -> str:
    cells = "".join(f"{latency.quantiles[name]:>10.2f}" for name, _ in QUANTILES)
    return f"  {label:<30}{count:>10}{cells}{latency.max:>10.2f}"


def _load(config: dict[str, object]) -> str:
    if config.get("mode") == "open":
        return f"schedule {config.get('schedule')}"
    return f"concurrency {config.get('concurrency')}"


def _latency_rows(report: Report) -> list[str]:
    """All statuses together, then each status; per stream when there are several."""
    rows = [f"  {'latency ms':<30}{'count':>10}{_HEAD}"]
    if report.overall is not None:
        rows.append(_row("all", report.answered, report.overall))
    streams = report.stream_reports()
    for stream in streams:
        prefix = f"{stream.label} " if len(streams) > 1 else ""
        rows += [_row(prefix + s.code, s.count, s.latency) for s in stream.statuses]
    return rows


def _self_check(check: SelfCheck) -> str:
    def p99(latency: Latency | None) -> str:
        return "-" if latency is None else f"{latency.quantiles['p99']:.2f} ms"

    cpu = "-" if check.cpu_peak_percent is None else f"{check.cpu_peak_percent:.0f}%"
    return (
        f"  harness: send lag p99 {p99(check.send_lag)}, event-loop lag p99 "
        f"{p99(check.loop_lag)}, busiest second {cpu} CPU, saturated {check.cpu_saturated_s} s"
    )


def render(report: Report) -> str:
    """A few lines: warnings, what ran, totals and rates, latency per status (ms), grouped
    errors, the harness's own lag, the target's memory."""
    c = dict(report.config)
    lines = [f"WARNING: {text}" for text in report.harness.warnings()]
    streams = report.stream_reports()
    if len(streams) == 1:
        lines.append(
            f"loadtest {c.get('target')} {c.get('method')}: {c.get('mode')} loop, {_load(c)}, "
            f"{c.get('connections')} connection(s), {c.get('workers')} worker(s)"
        )
    else:
        lines.append(f"loadtest {c.get('target')}: {len(streams)} streams")
        lines += [
            f"  {s.label}: {s.config.get('method')}, {s.config.get('mode')} loop, "
            f"{_load(dict(s.config))}, sent {s.sent}, answered {s.answered}"
            for s in streams
        ]
    lines += [
        f"  {report.duration_s:.1f} s: sent {report.sent} ({report.rate_sent:.1f}/s), "
        f"answered {report.answered} ({report.rate_answered:.1f}/s), late {report.late} "
        f"(>{LATE_MS:g} ms), dropped {report.dropped}, out of range {report.out_of_range}",
        *_latency_rows(report),
    ]
    for error in report.errors[:ERRORS_SHOWN]:
        lines.append(f"  error {error.code} x{error.count}: {error.details}")
    if len(report.errors) > ERRORS_SHOWN:
        lines.append(f"  ... and {len(report.errors) - ERRORS_SHOWN} more kinds of error")
    lines.append(_self_check(report.harness))
    levels = [s.level for s in report.timeline if s.level is not None]
    usages = [s.usage_percent for s in report.timeline if s.usage_percent is not None]
    if levels and usages:
        lines.append(
            f"  target memory: usage {min(usages):.1f}%..{max(usages):.1f}%, "
            f"peak level {max(levels)}"
        )
    return "\n".join(lines)
