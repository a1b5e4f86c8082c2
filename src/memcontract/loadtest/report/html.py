"""The one-page HTML report (``NAME.html``): what happened, at a glance, with no network.

Everything is inline (CSS, SVG and a few lines of script for the hover readout; no font, image
or script fetched), so the file opens the same anywhere. Read top down, as at 3 a.m.:

* warnings about the harness itself first (its own lag, its CPU), as k6 puts failed thresholds;
* the title names the streams; one table gives each stream's answers by status, shares, p99;
* the events (load phases, load stop, level changes) numbered, and drawn as numbered markers
  on every chart (vegeta's ``plot`` draws one series per attack on a shared time axis);
* per stream, answers by status per second (small multiples on one time axis); latency p99
  per stream; the target's memory usage with its 100 % budget line; the breach level as a
  step chart; the harness's late and dropped sends and its event-loop lag per second;
* latency by percentile per stream (HdrHistogram's plotter: percentiles on a log scale);
* errors grouped by code and message (numbers as ``N``), with one example each; the run.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from ..metrics import LATE_MS, decode
from ..result import QUANTILES, Latency, Report, Second

WIDTH, HEIGHT, SMALL_HEIGHT = 800, 170, 120
LEFT, RIGHT, TOP, BOTTOM = 56, 14, 6, 22
BUDGET_PERCENT = 100.0

#: Colours of the status series (others take the palette's in turn), of streams and levels.
STATUS_COLOURS = {"OK": "#2ca02c", "RESOURCE_EXHAUSTED": "#d62728", "DEADLINE_EXCEEDED": "#ff7f0e"}
PALETTE = ("#7f7f7f", "#17becf", "#bcbd22", "#e377c2", "#8c564b", "#1f77b4")
STREAM_COLOURS = ("#1f77b4", "#9467bd", "#17becf", "#e377c2", "#bcbd22", "#8c564b")
LEVEL_COLOURS = {0: "#2ca02c", 1: "#1f9bb4", 2: "#ff7f0e", 3: "#d62728"}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222;max-width:830px}
h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:22px 0 6px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:2px 8px;border-bottom:1px solid #ddd}
th{text-align:left;background:#f4f4f4}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
svg{display:block;margin:2px 0 12px}svg text{font:11px sans-serif;fill:#555}
svg text.m{font-weight:bold}
.k{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
.warn{background:#fde8e8;border:1px solid #d62728;padding:6px 10px;margin:8px 0;font-weight:bold}
.legend{font-size:12px;min-height:16px}.ct{margin-top:10px}.readout{color:#555;font-size:12px;margin-left:12px}
td.shed{color:#d62728;font-weight:bold}td.ok{color:#1a7f1a}
"""

# Hover readout: the values of the second under the pointer, written beside the legend.
_SCRIPT = """
document.querySelectorAll("svg[data-chart]").forEach(function (svg) {
  var data = JSON.parse(svg.getAttribute("data-values"));
  var out = svg.previousElementSibling.querySelector(".readout");
  var cursor = svg.querySelector("line.cursor");
  svg.addEventListener("mousemove", function (ev) {
    var box = svg.getBoundingClientRect();
    var x = ev.clientX - box.left;
    var t = Math.floor((x - data.left) / data.scale);
    if (t < 0 || t >= data.span) { out.textContent = ""; return; }
    cursor.setAttribute("x1", x); cursor.setAttribute("x2", x);
    var parts = data.series.map(function (s) {
      var v = s.values[t];
      return s.label + " " + (v === null || v === undefined ? "-" : (+v.toFixed(2)));
    });
    out.textContent = t + " s: " + parts.join(", ");
  });
});
"""


def nice_step(span: float, ticks: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``ticks`` ticks.

    >>> nice_step(130.7), nice_step(3.0), nice_step(48), nice_step(0.07)
    (50.0, 1.0, 10.0, 0.02)
    """
    if not span > 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return float(factor * power)
    return float(10 * power)


def nice_ticks(top: float, ticks: int = 5) -> list[float]:
    """Round tick values from 0 covering ``top`` (the last one >= ``top``).

    >>> nice_ticks(130.7)
    [0.0, 50.0, 100.0, 150.0]
    """
    step = nice_step(top, ticks)
    count = max(1, math.ceil(top / step - 1e-9))
    return [round(step * i, 10) for i in range(count + 1)]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


@dataclass(frozen=True)
class Series:
    """One line of a chart: a value per second from ``start`` (s on the chart's axis), as a
    line through the middle of each second or (``step``) flat over each second."""

    label: str
    colour: str
    values: Sequence[float | None]
    start: float = 0.0
    step: bool = False
    dash: str = ""


@dataclass(frozen=True)
class Marker:
    """A numbered vertical marker at ``at`` seconds on the chart's axis."""

    at: float
    number: int
    text: str
    colour: str


class Axis:
    """The shared time axis (s) and one chart's value axis, in SVG coordinates."""

    def __init__(self, span: float, top: float, height: int) -> None:
        self.span = max(1.0, span)
        self.top = top
        self.plot_w = WIDTH - LEFT - RIGHT
        self.plot_h = height - TOP - BOTTOM

    def x(self, seconds: float) -> float:
        return LEFT + self.plot_w * min(max(seconds, 0.0), self.span) / self.span

    def y(self, value: float) -> float:
        return TOP + self.plot_h * (1 - min(max(value, 0.0), self.top) / self.top)


def _path(axis: Axis, series: Series) -> str:
    """The SVG path of ``series`` (gaps where a value is ``None``); "" when nothing to draw."""
    commands: list[str] = []
    pen_down = False
    for i, value in enumerate(series.values):
        if value is None:
            pen_down = False
            continue
        t = series.start + i
        y = axis.y(value)
        if series.step:
            move = "L" if pen_down else "M"
            commands.append(f"{move}{axis.x(t):.1f},{y:.1f}H{axis.x(t + 1):.1f}")
        else:
            move = "L" if pen_down else "M"
            x = axis.x(t + 0.5)
            commands.append(f"{move}{x:.1f},{y:.1f}")
            if not pen_down and _lone(series.values, i):
                commands.append("h0.1")  # a lone point still shows (round caps)
        pen_down = True
    return "".join(commands)


def _lone(values: Sequence[float | None], i: int) -> bool:
    return i + 1 >= len(values) or values[i + 1] is None


def chart(
    title: str,
    unit: str,
    series: Sequence[Series],
    *,
    span: float | None = None,
    markers: Sequence[Marker] = (),
    y_max: float | None = None,
    budget: float | None = None,
    height: int = HEIGHT,
    stream: str = "",
) -> str:
    """An inline SVG chart of per-second ``series`` over ``span`` seconds, with round ticks,
    the event ``markers`` and (``budget``) a labelled horizontal line at that value."""
    seen = [v for s in series for v in s.values if v is not None]
    if span is None:
        span = max((s.start + len(s.values) for s in series), default=1.0)
    peak = max([*seen, budget or 0.0], default=0.0)
    ticks = nice_ticks(y_max if y_max is not None else (peak or 1.0))
    axis = Axis(span, ticks[-1], height)
    stream_attr = f' data-stream="{escape(stream)}"' if stream else ""
    values = {
        "left": LEFT,
        "scale": axis.plot_w / axis.span,
        "span": math.ceil(axis.span),
        "series": [_readout_values(s, math.ceil(axis.span)) for s in series],
    }
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" data-chart="1"{stream_attr} '
        f"data-values='{escape(json.dumps(values), quote=True)}'>",
    ]
    for value in ticks:
        ypos = axis.y(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + axis.plot_w}" y1="{ypos:.1f}" y2="{ypos:.1f}" '
            'stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{ypos + 4:.1f}" text-anchor="end">{_label(value)}</text>'
        )
    for t in nice_ticks(axis.span, 10):
        if t <= axis.span:
            parts.append(
                f'<text x="{axis.x(t):.1f}" y="{height - 8}" text-anchor="middle">{_label(t)} s'
                "</text>"
            )
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{axis.plot_w}" height="{axis.plot_h}" fill="none" '
        'stroke="#ccc"/>'
    )
    if budget is not None:
        ypos = axis.y(budget)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + axis.plot_w}" y1="{ypos:.1f}" y2="{ypos:.1f}" '
            'stroke="#d62728" stroke-dasharray="6 3" stroke-width="1.2"/>'
            f'<text x="{LEFT + 4}" y="{ypos - 4:.1f}" fill="#d62728">budget {_label(budget)}%'
            "</text>"
        )
    row, previous = 0, -100.0
    for marker in markers:
        xpos = axis.x(marker.at)
        row = row + 1 if xpos - previous < 14 and row < 3 else 0  # close labels: stacked
        previous = xpos
        parts.append(
            f'<g class="marker"><title>{escape(marker.text)}</title>'
            f'<line x1="{xpos:.1f}" x2="{xpos:.1f}" y1="{TOP}" y2="{TOP + axis.plot_h}" '
            f'stroke="{marker.colour}" stroke-dasharray="3 3"/>'
            f'<text class="m" x="{xpos + 2:.1f}" y="{TOP + 10 + 11 * row}" '
            f'fill="{marker.colour}">'
            f"{marker.number}</text></g>"
        )
    for s in series:
        d = _path(axis, s)
        if d:
            dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
            parts.append(
                f'<path class="series" data-series="{escape(s.label)}" d="{d}" fill="none" '
                f'stroke="{s.colour}" stroke-width="1.8" stroke-linecap="round"'
                f"{dash}><title>{escape(s.label)}</title></path>"
            )
    parts.append(
        f'<line class="cursor" x1="-9" x2="-9" y1="{TOP}" y2="{TOP + axis.plot_h}" '
        'stroke="#999"/></svg>'
    )
    legend = "".join(
        f'<span class="k" style="background:{s.colour}"></span>{escape(s.label)}' for s in series
    )
    head = f'<div class="ct"><b>{escape(title)}</b> ({escape(unit)})</div>'
    return f'{head}<div class="legend">{legend}<span class="readout"></span></div>' + "".join(parts)


def _readout_values(series: Series, span: int) -> dict[str, object]:
    """``series`` as one value per second of the axis (for the hover readout)."""
    values: list[float | None] = [None] * span
    for i, value in enumerate(series.values):
        t = math.floor(series.start + i)
        if 0 <= t < span:
            values[t] = value
    return {"label": series.label, "values": values}


# -- the page's parts ------------------------------------------------------------------------------


def _status_colours(codes: Sequence[str]) -> dict[str, str]:
    others = iter(PALETTE * (1 + len(codes) // len(PALETTE)))
    return {code: STATUS_COLOURS.get(code) or next(others) for code in codes}


def _codes(report: Report) -> list[str]:
    found = {s.code for s in report.statuses} | {c for s in report.timeline for c in s.codes}
    return sorted(found, key=lambda c: (c != "OK", c))


def _offset(report: Report, stream: Report) -> float:
    """Where ``stream``'s second 0 falls on the merged report's axis (s)."""
    return round(stream.start_unix - report.start_unix, 3)


PerSecond = Callable[[Second], float | None]


def _per_second(
    stream: Report, offset: float, value: PerSecond
) -> tuple[float, list[float | None]]:
    """(start on the axis, one value per second) of ``stream``'s timeline, gaps as None."""
    timeline = stream.timeline
    if not timeline:
        return offset, []
    first = timeline[0].second
    values: list[float | None] = [None] * (timeline[-1].second - first + 1)
    for s in timeline:
        values[s.second - first] = value(s)
    return offset + first, values


def _count_of(code: str) -> PerSecond:
    def count(second: Second) -> float:
        return second.codes.get(code, 0)

    return count


def markers(report: Report) -> list[Marker]:
    """The events to draw: phases and stops, and level changes (the target's own when the
    report has them, else as read in trailers, each change once whichever stream saw it)."""
    own = any(e.kind == "server-level" for e in report.events)
    shown: list[Marker] = []
    last_level: int | None = 0  # a first reading of level 0 is no news
    for event in report.events:
        if event.kind == "level":
            if own or event.level == last_level:
                continue
            last_level = event.level
        colour = LEVEL_COLOURS.get(event.level or 0, "#555") if "level" in event.kind else "#444"
        at = event.unix - report.start_unix
        shown.append(Marker(at, len(shown) + 1, f"{at:.1f} s: {event.text}", colour))
    return shown


def _stream_table(report: Report, codes: Sequence[str]) -> str:
    streams = report.stream_reports()
    head = "".join(f'<th class="n">{escape(c)}</th>' for c in codes)
    rows = []
    for stream in (*streams, report) if len(streams) > 1 else streams:
        name = "all streams" if stream is report and len(streams) > 1 else stream.label
        cells = []
        for code in codes:
            count = stream.count(code)
            share = f" ({100 * count / stream.answered:.0f}%)" if stream.answered and count else ""
            kind = "ok" if code == "OK" and count else ("shed" if count else "")
            cells.append(f'<td class="n {kind}">{count}{share}</td>')
        p99 = "-" if stream.overall is None else f"{stream.overall.quantiles['p99']:.1f}"
        rows.append(
            f"<tr><td><b>{escape(name)}</b></td>"
            f'<td class="n">{stream.sent}</td>{"".join(cells)}'
            f'<td class="n">{stream.late}</td><td class="n">{stream.dropped}</td>'
            f'<td class="n">{p99}</td></tr>'
        )
    return (
        '<table><tr><th>stream</th><th class="n">sent</th>'
        f'{head}<th class="n">late</th><th class="n">dropped</th><th class="n">p99 ms</th></tr>'
        f"{''.join(rows)}</table>"
    )


def _latency_table(report: Report) -> str:
    head = "".join(f'<th class="n">{name}</th>' for name, _ in QUANTILES)
    rows = []
    for stream in report.stream_reports():
        for status in stream.statuses:
            rows.append(
                f"<tr><td>{escape(stream.label)}</td><td>{escape(status.code)}</td>"
                f'<td class="n">{status.count}</td>{_latency_cells(status.latency)}</tr>'
            )
    return (
        f'<table><tr><th>stream</th><th>status</th><th class="n">count</th>{head}'
        f'<th class="n">max</th><th class="n">mean</th></tr>{"".join(rows)}</table>'
    )


def _latency_cells(latency: Latency) -> str:
    cells = [latency.quantiles[name] for name, _ in QUANTILES] + [latency.max, latency.mean]
    return "".join(f'<td class="n">{v:.2f}</td>' for v in cells)


def _error_table(report: Report) -> str:
    rows = []
    for stream in report.stream_reports():
        for e in stream.errors:
            example = "" if e.example == e.details else escape(e.example)
            rows.append(
                f"<tr><td>{escape(stream.label)}</td><td>{escape(e.code)}</td>"
                f'<td class="n">{e.count}</td><td>{escape(e.details)}</td><td>{example}</td></tr>'
            )
    if not rows:
        return "<p>None.</p>"
    return (
        '<table><tr><th>stream</th><th>status</th><th class="n">count</th><th>details '
        "(numbers as N)</th><th>e.g.</th></tr>" + "".join(rows) + "</table>"
    )


def _config_table(report: Report) -> str:
    """The settings of each stream, one column per stream."""
    streams = report.stream_reports()
    keys = list(dict.fromkeys(k for s in streams for k in s.config))
    head = "".join(f"<th>{escape(s.label)}</th>" for s in streams)
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th>"
        + "".join(f"<td>{escape(str(s.config.get(k, '')))}</td>" for s in streams)
        + "</tr>"
        for k in keys
    )
    return f"<table><tr><th>setting</th>{head}</tr>{rows}</table>"


def _event_list(shown: Sequence[Marker]) -> str:
    if not shown:
        return ""
    items = "".join(
        f'<tr><td class="n" style="color:{m.colour}"><b>{m.number}</b></td>'
        f"<td>{escape(m.text)}</td></tr>"
        for m in shown
    )
    return f"<h2>Events (numbered on every chart)</h2><table>{items}</table>"


def _server_levels(report: Report) -> Series | None:
    """The target's own level as a step series from its ``server-level`` events."""
    changes = [e for e in report.events if e.kind == "server-level" and e.level is not None]
    if not changes:
        return None
    span = max(len(report.timeline), math.ceil(report.duration_s))
    values: list[float | None] = [None] * span
    for i, event in enumerate(changes):
        begin = max(0, math.floor(event.unix - report.start_unix))
        end = span if i + 1 == len(changes) else changes[i + 1].unix - report.start_unix
        for t in range(begin, min(span, math.ceil(end))):
            values[t] = float(event.level or 0)
    return Series("server (its own)", "#111", values, step=True, dash="5 3")


def _charts(report: Report, shown: Sequence[Marker], codes: Sequence[str]) -> list[str]:
    streams = report.stream_reports()
    span = max(
        (_offset(report, s) + (s.timeline[-1].second + 1 if s.timeline else 0) for s in streams),
        default=1.0,
    )
    colours = _status_colours(codes)
    out = []
    for stream in streams:
        offset = _offset(report, stream)
        series = []
        for code in _codes(stream):
            start, values = _per_second(stream, offset, _count_of(code))
            series.append(Series(code, colours[code], values, start))
        out.append(
            chart(
                f"{stream.label}: answers by status",
                "calls/s",
                series,
                span=span,
                markers=shown,
                height=SMALL_HEIGHT,
                stream=stream.label,
            )
        )
    stream_colours = dict(zip((s.label for s in streams), STREAM_COLOURS * 4, strict=False))

    def per_stream(value: PerSecond, what: str) -> list[Series]:
        return [
            Series(f"{s.label} {what}".strip(), stream_colours[s.label], values, start)
            for s in streams
            for start, values in [_per_second(s, _offset(report, s), value)]
        ]

    t = report.timeline
    level = Series(
        "x-memory-level in trailers (highest per second)",
        "#8c564b",
        [None if s.level is None else float(s.level) for s in t],
        step=True,
    )
    own = _server_levels(report)
    out += [
        chart("Sent", "calls/s", per_stream(lambda s: s.sent, "sent"), span=span, markers=shown),
        chart(
            "Latency p99",
            "ms, from each call's intended start",
            per_stream(lambda s: s.p99_ms, "p99"),
            span=span,
            markers=shown,
        ),
        chart(
            "Target memory usage",
            "% of its budget, x-memory-usage",
            [Series("usage", "#9467bd", [s.usage_percent for s in t])],
            span=span,
            markers=shown,
            budget=BUDGET_PERCENT,
        ),
        chart(
            "Target breach level",
            "0-3",
            [level, *([own] if own else [])],
            span=span,
            markers=shown,
            y_max=3.0,
            height=SMALL_HEIGHT,
        ),
        chart(
            "Harness: late and dropped sends",
            f"calls/s; late: sent > {LATE_MS:g} ms after the intended start",
            [
                Series("late", "#ff7f0e", [s.late for s in t]),
                Series("dropped", "#d62728", [s.dropped for s in t]),
            ],
            span=span,
            markers=shown,
            height=SMALL_HEIGHT,
        ),
        chart(
            "Harness: event-loop lag",
            "ms, worst per second",
            [Series("loop lag", "#7f7f7f", [s.loop_lag_ms for s in t])],
            span=span,
            markers=shown,
            height=SMALL_HEIGHT,
        ),
    ]
    return out


#: The percentiles of the percentile plot (HdrHistogram's: 1 - 1/10^k spaced evenly).
PLOT_PERCENTILES = (0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0)


def percentile_chart(report: Report) -> str:
    """Latency by percentile, one line per stream and status, x as 1/(1-p) on a log scale."""
    streams = report.stream_reports()
    lines = []
    status_colours = _status_colours(_codes(report))
    for n, stream in enumerate(streams):
        for status in stream.statuses:
            hist = decode(status.histogram)
            values = [hist.get_value_at_percentile(p) / 1000 for p in PLOT_PERCENTILES]
            if len(streams) > 1:  # colour: the stream; dashed: not OK
                label, colour = f"{stream.label} {status.code}", STREAM_COLOURS[n % 6]
                dash = "" if status.code == "OK" else "6 3"
            else:
                label, colour, dash = status.code, status_colours[status.code], ""
            lines.append((label, colour, values, dash))
    top = nice_ticks(max((v for _, _, vals, _ in lines for v in vals), default=1.0) or 1.0)
    axis = Axis(len(PLOT_PERCENTILES) - 1, top[-1], HEIGHT + 40)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 40}" '
        'role="img" aria-label="latency by percentile">'
    ]
    for value in top:
        ypos = axis.y(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + axis.plot_w}" y1="{ypos:.1f}" y2="{ypos:.1f}" '
            f'stroke="#eee"/><text x="{LEFT - 6}" y="{ypos + 4:.1f}" text-anchor="end">'
            f"{_label(value)}</text>"
        )
    for i, p in enumerate(PLOT_PERCENTILES):
        parts.append(
            f'<text x="{axis.x(i):.1f}" y="{HEIGHT + 40 - 8}" text-anchor="middle">'
            f"{'max' if p == 100 else f'{p:g}%'}</text>"
        )
    for label, colour, values, dash in lines:
        d = "".join(
            f"{'L' if i else 'M'}{axis.x(i):.1f},{axis.y(v):.1f}" for i, v in enumerate(values)
        )
        style = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<path class="series" data-series="{escape(label)}" d="{d}" fill="none" '
            f'stroke="{colour}" stroke-width="1.8"{style}><title>{escape(label)}</title></path>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="k" style="background:{c}"></span>{escape(label)}'
        f"{' (dashed)' if dash else ''}"
        for label, c, _, dash in lines
    )
    head = (
        '<div class="ct"><b>Latency by percentile</b> (ms, from each call\'s intended start)</div>'
    )
    return f'{head}<div class="legend">{legend}</div>' + "".join(parts)


def title(report: Report) -> str:
    """What the page is about: the streams (their labels) and the target."""
    labels = ", ".join(s.label for s in report.stream_reports())
    return f"memcontract loadtest: {labels} on {report.config.get('target')}"


def _summary(report: Report) -> str:
    started = datetime.datetime.fromtimestamp(report.start_unix, datetime.UTC)
    peak = max((s.level for s in report.timeline if s.level is not None), default=None)
    usages = [s.usage_percent for s in report.timeline if s.usage_percent is not None]
    memory = (
        f" Target: peak level {peak}, usage up to {max(usages):.1f}% of its budget."
        if peak is not None and usages
        else ""
    )
    return (
        f"<p>Started {started:%Y-%m-%d %H:%M:%S} UTC, measured {report.duration_s:.1f} s. "
        f"Sent {report.sent} ({report.rate_sent:.1f}/s), answered {report.answered} "
        f"({report.rate_answered:.1f}/s), late {report.late} (&gt;{LATE_MS:g} ms after the "
        f"intended start), dropped {report.dropped}, out of histogram range "
        f"{report.out_of_range}.{memory}</p>"
    )


def _harness_line(report: Report) -> str:
    h = report.harness

    def p99(latency: Latency | None) -> str:
        return "-" if latency is None else f"{latency.quantiles['p99']:.2f} ms"

    cpu = "-" if h.cpu_peak_percent is None else f"{h.cpu_peak_percent:.0f}%"
    return (
        f"<p>The harness itself: send lag p99 {p99(h.send_lag)}, event-loop lag p99 "
        f"{p99(h.loop_lag)}, busiest second {cpu} of a CPU, saturated "
        f"{h.cpu_saturated_s} s.</p>"
    )


def render(report: Report) -> str:
    """The whole page."""
    codes = _codes(report)
    shown = markers(report)
    warnings = "".join(
        f'<div class="warn">Warning: {escape(w)}</div>' for w in report.harness.warnings()
    )
    config_rows = _config_table(report)
    sources = f"<p>Merged from: {escape(', '.join(report.sources))}</p>" if report.sources else ""
    heading = escape(title(report))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{heading}</title><style>{_CSS}</style></head><body>
<h1>{heading}</h1>{warnings}{_summary(report)}{sources}
<h2>Answers by stream and status</h2>{_stream_table(report, codes)}
{_event_list(shown)}
<h2>Over time</h2>{"".join(_charts(report, shown, codes))}
{_harness_line(report)}
<h2>Latency by stream and status (ms, from each call's intended start)</h2>
{_latency_table(report)}{percentile_chart(report)}
<h2>Errors, grouped</h2>{_error_table(report)}
<h2>Run</h2>{config_rows}
<script>{_SCRIPT}</script>
</body></html>
"""


def write(report: Report, path: str | Path) -> None:
    """Write the page for ``report`` to ``path``."""
    Path(path).write_text(render(report))
