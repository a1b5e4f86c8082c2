"""Metrics, exact merges and the report renderers (JSON schema, CSV, HTML), with no network."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path
from xml.etree import ElementTree

import jsonschema
import pytest
from rich.console import Console

from memcontract.loadtest.live import LiveProgress
from memcontract.loadtest.metrics import Metrics, decode, merge, new_histogram, record
from memcontract.loadtest.report import html, jsonfmt, text, write_all
from memcontract.loadtest.result import Report

START = 1_700_000_000.25
CODES = ("OK", "OK", "OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")


def _calls(n: int, seed: int = 7) -> list[tuple[str, float, float, float, float | None, int]]:
    """Synthetic calls: (code, intended, sent, done, usage %, level) over ~5 s."""
    rng = random.Random(seed)
    calls = []
    for i in range(n):
        intended = START + i * 5.0 / n
        sent = intended + rng.choice((0.0, 0.0, 0.002, 0.05))
        done = sent + rng.expovariate(1 / 0.02)
        calls.append(
            (rng.choice(CODES), intended, sent, done, 40.0 + i * 50 / n, min(3, i * 4 // n))
        )
    return calls


def _record(
    metrics: Metrics, calls: list[tuple[str, float, float, float, float | None, int]]
) -> None:
    for code, intended, sent, done, usage, level in calls:
        metrics.on_sent(intended, sent)
        details = None if code == "OK" else f"{code.lower()} details"
        metrics.on_done(code, intended, sent, done, details)
        metrics.on_memory(done, usage, level)
        metrics.on_loop_lag(sent, 0.001)


CONFIG = {"target": "127.0.0.1:1", "method": "/test.Load/Echo", "mode": "open"}


def _single_and_merged(n: int = 3000, parts: int = 3) -> tuple[Report, Report]:
    calls = _calls(n)
    single = Metrics(START)
    _record(single, calls)
    pieces = []
    for k in range(parts):
        part = Metrics(START)
        _record(part, calls[k::parts])
        # Through JSON, as worker reports and files travel.
        pieces.append(
            jsonfmt.report_from_dict(
                json.loads(json.dumps(jsonfmt.report_to_dict(part.freeze(CONFIG))))
            )
        )
    return single.freeze(CONFIG), merge(pieces, CONFIG, ())


def test_merged_parts_equal_the_single_run_exactly() -> None:
    single, merged = _single_and_merged()
    assert merged.sent == single.sent == 3000
    assert merged.answered == single.answered
    assert merged.late == single.late > 0
    assert [(s.code, s.count, s.latency) for s in merged.statuses] == [
        (s.code, s.count, s.latency) for s in single.statuses
    ]
    for a, b in zip(merged.statuses, single.statuses, strict=True):
        ha, hb = decode(a.histogram), decode(b.histogram)
        assert ha.get_total_count() == hb.get_total_count() == a.count
        assert list(ha.counts) == list(hb.counts)  # bucket for bucket
    assert merged.overall == single.overall
    assert merged.errors == single.errors
    # Per second: counts and p99 alike; usage is some worker's last, the level the highest.
    assert [
        (s.second, s.sent, s.answered, dict(s.codes), s.p99_ms, s.level) for s in merged.timeline
    ] == [(s.second, s.sent, s.answered, dict(s.codes), s.p99_ms, s.level) for s in single.timeline]


def test_report_json_round_trip_and_schema(tmp_path: Path) -> None:
    single, _ = _single_and_merged(600)
    path = tmp_path / "run.json"
    jsonfmt.write(single, path)
    data = json.loads(path.read_text())
    jsonschema.validate(data, jsonfmt.SCHEMA)
    assert jsonfmt.read(path) == single
    assert data["timeline"][0]["second"] == 0
    assert data["statuses"][0]["code"] == "OK"
    # The schema is not a formality: a wrong field fails it.
    data["totals"]["sent"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, jsonfmt.SCHEMA)


def test_out_of_range_latency_is_counted() -> None:
    metrics = Metrics(START)
    metrics.on_sent(START, START)
    metrics.on_done("OK", START, START, START + 2 * 3600)  # two hours: over the histogram's hour
    report = metrics.freeze(CONFIG)
    assert report.out_of_range == 1
    assert report.answered == 1


def test_write_all_writes_three_non_empty_files(tmp_path: Path) -> None:
    report, _ = _single_and_merged(600)
    paths = write_all(report, str(tmp_path / "sub" / "run"))
    assert [p.suffix for p in paths] == [".json", ".csv", ".html"]
    rows = list(csv.DictReader(paths[1].open()))
    assert len(rows) == len(report.timeline) >= 5
    assert {"second", "sent", "answered", "p99_ms", "usage_percent", "level", "OK"} <= set(rows[0])
    assert sum(int(r["sent"]) for r in rows) == report.sent
    page = paths[2].read_text()
    assert page.count("<svg") == 8 and "x-memory-level" in page
    assert "Echo: answers by status" in page  # OK per second (the statuses over time)
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        root = ElementTree.fromstring(svg)  # well-formed, with lines drawn
        paths_drawn = root.findall(".//{http://www.w3.org/2000/svg}path")
        assert paths_drawn and all(p.get("d") for p in paths_drawn)
    # Self-contained: nothing fetched (the only URL is SVG's namespace, which is not fetched).
    for token in ("<script src", "src=", "href=", "@import", "url(", "//cdn"):
        assert token not in page
    assert "RESOURCE_EXHAUSTED" in page


def test_html_chart_handles_gaps_and_empty_series() -> None:
    svg = html.chart(
        "t",
        "u",
        [html.Series("a", "#000", [None, 1.0, None, 2.0, 3.0]), html.Series("b", "#111", [])],
    )
    root = ElementTree.fromstring(svg[svg.index("<svg") :])
    (drawn,) = root.findall(".//{http://www.w3.org/2000/svg}path")  # "b" draws nothing
    assert drawn.get("d", "").count("M") == 2  # two stretches: the lone point and the pair


def test_nice_ticks_read_as_round_numbers() -> None:
    assert html.nice_ticks(130.7) == [0, 50, 100, 150]  # not 0 / 65.34 / 130.7
    assert html.nice_ticks(3.0) == [0, 1, 2, 3]
    assert html.nice_ticks(7.3) == [0, 2, 4, 6, 8]
    assert html.nice_ticks(0.0) == [0, 1]
    assert html.nice_ticks(48) == [0, 10, 20, 30, 40, 50]


def test_text_summary_names_statuses_and_memory() -> None:
    report, _ = _single_and_merged(600)
    out = text.render(report)
    assert "RESOURCE_EXHAUSTED" in out and "peak level 3" in out and "p99.9" in out


def test_live_progress_draws_on_a_terminal_and_is_quiet_otherwise() -> None:
    report, _ = _single_and_merged(600)
    quiet = LiveProgress("t")  # pytest's stdout is not a terminal
    with quiet:
        for second in report.timeline:
            quiet(second)
    assert quiet.live is None and len(quiet.rows) == len(report.timeline)
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    shown = LiveProgress("/test.Load/Echo", enabled=True, console=console)
    with shown:
        for second in report.timeline:
            shown(second)
    drawn = console.file.getvalue()  # type: ignore[attr-defined]
    assert "/test.Load/Echo" in drawn and "RESOURCE_EXHAUSTED=" in drawn


@pytest.mark.parametrize("digits", [2, 3])
def test_fast_record_matches_hdrhistogram(digits: int) -> None:
    rng = random.Random(digits)
    values = [rng.randrange(1, 10**k) for k in range(1, 11) for _ in range(300)]
    values += [1, 2, 1023, 1024, 2047, 2048, 3_600_000_000, 3_600_000_001, 10**12]
    ours, theirs = new_histogram(digits), new_histogram(digits)
    for v in values:
        assert record(ours, v) == theirs.record_value(v), v
    assert list(ours.counts) == list(theirs.counts)
    assert (ours.get_total_count(), ours.get_min_value(), ours.get_max_value()) == (
        theirs.get_total_count(), theirs.get_min_value(), theirs.get_max_value()
    )  # fmt: skip
