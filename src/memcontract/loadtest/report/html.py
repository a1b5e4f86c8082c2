"""The one-page HTML report (``NAME.html``): summary tables and charts, with no network.

Everything is inline (CSS and SVG, no script, no fonts or images fetched), so the file opens
the same anywhere. Charts over the run's seconds: rate sent and answered, answers by status,
p99 latency, the target's memory usage (%) and breach level.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from html import escape
from pathlib import Path

from ..metrics import LATE_MS
from ..result import QUANTILES, Latency, Report, Second

WIDTH, HEIGHT = 760, 190
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 22, 26
Series = tuple[str, str, Sequence[float | None]]  # (label, colour, one value per second)

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:820px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd}
th{text-align:left;background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
svg{display:block;margin:6px 0 18px}svg text{font:11px sans-serif;fill:#555}
.k{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""


def chart(title: str, unit: str, series: Sequence[Series], *, y_max: float | None = None) -> str:
    """An inline SVG line chart of per-second ``series`` (gaps where a value is ``None``)."""
    seen = [v for _, _, values in series for v in values if v is not None]
    top = y_max if y_max is not None else max(seen, default=0.0) * 1.1 or 1.0
    count = max((len(values) for _, _, values in series), default=0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - min(v, top) / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="14" style="font-weight:bold">{escape(title)} ({escape(unit)})</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#ccc"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        value, ypos = top * frac, y(top * frac)
        parts.append(
            f'<text x="{LEFT - 6}" y="{ypos + 4:.1f}" text-anchor="end">{value:.4g}</text>'
        )
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ypos:.1f}" y2="{ypos:.1f}" '
            'stroke="#eee"/>'
        )
    for i in sorted({0, count // 2, max(0, count - 1)}):
        parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 8}" text-anchor="middle">{i} s</text>')
    for label, colour, values in series:
        for run in _runs(values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) == 1:
                i, v = run[0]
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2" fill="{colour}"/>')
            else:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
                    f'points="{points}"/>'
                )
        parts.append(f"<title>{escape(label)}</title>")
    parts.append("</svg>")
    legend = "".join(
        f'<span class="k" style="background:{c}"></span>{escape(label)}' for label, c, _ in series
    )
    return f"<div>{legend}</div>" + "".join(parts)


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive non-None stretches of ``values`` with their indices."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, v in enumerate(values):
        if v is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, v))
    if current:
        runs.append(current)
    return runs


#: Colours of the status series (others take the palette's in turn).
STATUS_COLOURS = {"OK": "#2ca02c", "RESOURCE_EXHAUSTED": "#d62728", "DEADLINE_EXCEEDED": "#ff7f0e"}
PALETTE = ("#7f7f7f", "#17becf", "#bcbd22", "#e377c2", "#8c564b", "#1f77b4")


def _status_series(timeline: Sequence[Second]) -> list[Series]:
    """Calls answered per second with each status seen (sheds show as RESOURCE_EXHAUSTED)."""
    codes = sorted({c for s in timeline for c in s.codes}, key=lambda c: (c != "OK", c))
    others = iter(PALETTE * (1 + len(codes) // len(PALETTE)))
    return [
        (code, STATUS_COLOURS.get(code) or next(others), [s.codes.get(code, 0) for s in timeline])
        for code in codes
    ]


def _latency_cells(latency: Latency) -> str:
    cells = [latency.quantiles[name] for name, _ in QUANTILES] + [latency.max, latency.mean]
    return "".join(f'<td class="n">{v:.2f}</td>' for v in cells)


def render(report: Report) -> str:
    """The whole page."""
    c = report.config
    started = datetime.datetime.fromtimestamp(report.start_unix, datetime.UTC)
    head = "".join(f"<th>{name}</th>" for name, _ in QUANTILES) + "<th>max</th><th>mean</th>"
    rows = []
    if report.overall is not None:
        rows.append(
            f"<tr><td>all</td><td class='n'>{report.answered}</td>"
            f"{_latency_cells(report.overall)}</tr>"
        )
    rows += [
        f"<tr><td>{escape(s.code)}</td><td class='n'>{s.count}</td>{_latency_cells(s.latency)}</tr>"
        for s in report.statuses
    ]
    config_rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in c.items()
    )
    errors = "".join(
        f"<tr><td>{escape(e.code)}</td><td class='n'>{e.count}</td>"
        f"<td>{escape(e.details)}</td></tr>"
        for e in report.errors
    )
    t = report.timeline
    levels = [None if s.level is None else float(s.level) for s in t]
    charts = [
        chart(
            "Rate",
            "calls/s",
            [
                ("sent", "#1f77b4", [s.sent for s in t]),
                ("answered", "#2ca02c", [s.answered for s in t]),
            ],
        ),
        chart("Answered by status", "calls/s", _status_series(t)),
        chart(
            "Latency",
            "ms, from intended start",
            [("p99", "#d62728", [s.p99_ms for s in t]), ("p50", "#ff7f0e", [s.p50_ms for s in t])],
        ),
        chart(
            "Target memory usage",
            "% of capacity",
            [("x-memory-usage", "#9467bd", [s.usage_percent for s in t])],
        ),
        chart("Target breach level", "0-3", [("x-memory-level", "#8c564b", levels)], y_max=3.0),
    ]
    sources = f"<p>Merged from: {escape(', '.join(report.sources))}</p>" if report.sources else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>loadtest {escape(str(c.get("method")))}</title><style>{_CSS}</style></head><body>
<h1>memcontract loadtest: {escape(str(c.get("method")))} on {escape(str(c.get("target")))}</h1>
<p>Started {started:%Y-%m-%d %H:%M:%S} UTC, measured {report.duration_s:.1f} s.
Sent {report.sent} ({report.rate_sent:.1f}/s), answered {report.answered}
({report.rate_answered:.1f}/s), late {report.late} (&gt;{LATE_MS:g} ms after the intended
start), dropped {report.dropped}, out of histogram range {report.out_of_range}.</p>{sources}
<h2>Latency by status (ms, from each call's intended start)</h2>
<table><tr><th>status</th><th>count</th>{head}</tr>{"".join(rows)}</table>
<h2>Over time</h2>{"".join(charts)}
<h2>Errors</h2><table><tr><th>status</th><th>count</th><th>details</th></tr>{errors}</table>
<h2>Run</h2><table>{config_rows}</table>
</body></html>
"""


def write(report: Report, path: str | Path) -> None:
    """Write the page for ``report`` to ``path``."""
    Path(path).write_text(render(report))
