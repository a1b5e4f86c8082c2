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


def _stream(method: str, calls: list[tuple[str, float, float, float, float | None, int]]) -> Report:
    metrics = Metrics(START)
    _record(metrics, calls)
    return metrics.freeze({**CONFIG, "method": method})


def test_merge_keeps_streams_apart_with_exact_totals(tmp_path: Path) -> None:
    calls = _calls(900)
    echo, ping = _stream("/test.Load/Echo", calls[::2]), _stream("/test.Load/Ping", calls[1::2])
    merged = merge([echo, ping], CONFIG, ("echo.json", "ping.json"))
    assert [s.label for s in merged.streams] == ["Echo", "Ping"]
    assert merged.streams == (echo, ping)  # each stream exactly as it was
    single = Metrics(START)
    _record(single, calls)
    whole = single.freeze(CONFIG)
    assert (merged.sent, merged.answered, merged.statuses) == (
        whole.sent, whole.answered, whole.statuses
    )  # fmt: skip
    # Through JSON, schema-valid; merged again with a third run of Echo: Echo's runs add up.
    path = tmp_path / "merged.json"
    jsonfmt.write(merged, path)
    jsonschema.validate(json.loads(path.read_text()), jsonfmt.SCHEMA)
    again = merge([jsonfmt.read(path), echo], CONFIG, ())
    assert [(s.label, s.sent) for s in again.streams] == [
        ("Echo", 2 * echo.sent),
        ("Ping", ping.sent),
    ]
    assert again.sent == merged.sent + echo.sent
    # A stream's report has no streams of its own (the schema says so).
    data = json.loads(path.read_text())
    data["streams"][0]["streams"] = [data["streams"][1]]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, jsonfmt.SCHEMA)
    # The page's title names the streams; each has its own answers-by-status chart.
    page = html.render(merged)
    assert "<title>memcontract loadtest: Echo, Ping on 127.0.0.1:1</title>" in page
    for label in ("Echo", "Ping"):
        (svg,) = re.findall(rf'<svg[^>]*data-stream="{label}".*?</svg>', page, re.S)
        assert re.search(r'<path class="series" data-series="OK" d="M[^"]+"', svg)
    summary = text.render(merged)
    assert "2 streams" in summary and "Ping RESOURCE_EXHAUSTED" in summary


def test_runs_of_one_stream_merge_into_one() -> None:
    calls = _calls(600)
    parts = [_stream("/test.Load/Echo", calls[k::2]) for k in range(2)]
    merged = merge(parts, CONFIG, ())
    assert merged.streams == () and merged.stream_reports() == (merged,)
    assert merged.sent == 600


def test_runs_made_one_after_another_are_laid_over_each_other() -> None:
    """Merged runs line up by seconds from each run's start, so the merged length is the
    longest run's, and the rates are the timeline's (the span from the first start to the last
    end made two 5 s runs 100 s apart one of 105 s at a twentieth of their rate)."""
    first = Metrics(START)
    _record(first, _calls(600))
    later = Metrics(START + 100)
    _record(later, [(c, i + 100, s + 100, d + 100, u, lv) for c, i, s, d, u, lv in _calls(400)])
    a, b = first.freeze(CONFIG), later.freeze(CONFIG)
    merged = merge([a, b], CONFIG, ())
    assert merged.duration_s == max(a.duration_s, b.duration_s)
    assert merged.rate_sent == pytest.approx(1000 / merged.duration_s)
    assert len(merged.timeline) == max(len(a.timeline), len(b.timeline))
    assert sum(s.sent for s in merged.timeline) == merged.sent == 1000
    # Each run's level changes keep their offsets from its start, inside the merged run (the
    # later run's fell 100 s past its end).
    offsets = [e.unix - merged.start_unix for e in merged.events]
    assert b.events and offsets and all(0 <= t <= merged.duration_s for t in offsets), offsets


def test_level_changes_are_events_and_an_absent_key_means_unchanged() -> None:
    metrics = Metrics(START)
    for i, level in enumerate([0, 0, None, 3, None, None, 1, None]):
        at = START + i + 0.5
        metrics.on_sent(at, at)
        metrics.on_done("OK", at, at, at + 0.01)
        # a target sending keys only on change: None is a call whose trailers had no key
        metrics.on_memory(at + 0.01, None if level is None else 50.0 + 10 * level, level)
    report = metrics.freeze(CONFIG)
    assert [s.level for s in report.timeline] == [0, 0, 0, 3, 3, 3, 1, 1]
    assert [s.usage_percent for s in report.timeline] == [50, 50, 50, 80, 80, 80, 60, 60]
    assert [(e.kind, e.level, e.text) for e in report.events] == [
        ("level", 0, "level 0 at first read (Echo)"),
        ("level", 3, "level 0 -> 3 (Echo)"),
        ("level", 1, "level 3 -> 1 (Echo)"),
    ]
    # Drawn as markers (a first level 0 is no news) on every chart.
    page = html.render(report)
    assert len(html.markers(report)) == 2
    assert page.count('<g class="marker">') == 2 * page.count('data-chart="1"') == 14


def test_a_level_read_last_in_a_second_is_carried_over_live_and_in_the_report() -> None:
    """Level 3 then level 0 in one second: the second shows 3 (its highest), the seconds
    after it that read no key show 0 (in force when it ended), live as in the report."""
    metrics = Metrics(START)
    for at, level in [(START + 0.2, 3), (START + 0.7, 0), (START + 1.5, None), (START + 2.5, None)]:
        metrics.on_sent(at, at)
        metrics.on_done("OK", at, at, at + 0.01)
        metrics.on_memory(at + 0.01, None if level is None else 50.0, level)
    live = [metrics.live_second(k).level for k in range(3)]
    assert live == [3, 0, 0]
    assert [s.level for s in metrics.freeze(CONFIG).timeline] == live


def test_phases_and_stop_are_events() -> None:
    from memcontract.loadtest import LoadSpec, parse_schedule

    spec = LoadSpec("127.0.0.1:1", "/a.B/C", schedule=parse_schedule("step:10,20,30:5s"))
    assert [(e.unix, e.text) for e in spec.phases(100.0)] == [
        (105.0, "step to 20/s"),
        (110.0, "step to 30/s"),
    ]
    ramp = LoadSpec("127.0.0.1:1", "/a.B/C", schedule=parse_schedule("ramp:1->9:4s"), duration=10.0)
    assert [e.text for e in ramp.phases(0.0)] == ["schedule ends, 9/s held"]


def test_errors_are_grouped_with_numbers_normalised() -> None:
    metrics = Metrics(START)
    for usage in ("102.3", "97", "110.9", "102.3"):
        metrics.on_sent(START, START)
        details = f"memory pressure: level 3 (usage {usage}%); retry after 1000 ms"
        metrics.on_done("RESOURCE_EXHAUSTED", START, START, START + 0.01, details)
    metrics.on_done("UNAVAILABLE", START, START, START + 0.01, "connection reset")
    report = metrics.freeze(CONFIG)
    assert [(e.code, e.details, e.count) for e in report.errors] == [
        ("RESOURCE_EXHAUSTED", "memory pressure: level N (usage N%); retry after N ms", 4),
        ("UNAVAILABLE", "connection reset", 1),
    ]
    assert report.errors[0].example.endswith("(usage 102.3%); retry after 1000 ms")
    out = text.render(report)
    assert out.count("error RESOURCE_EXHAUSTED") == 1 and "x4: memory pressure" in out
    page = html.render(report)
    assert page.count("usage N%") == 1 and "usage 102.3%" in page


def test_the_harness_says_when_it_fell_behind() -> None:
    metrics = Metrics(START)
    for i in range(200):
        intended = START + i * 0.01
        lag = 0.05 if i % 10 == 0 else 0.0005  # 10 % of sends 50 ms late: p99 50 ms
        metrics.on_sent(intended, intended + lag)
        metrics.on_done("OK", intended, intended + lag, intended + lag + 0.002)
        metrics.on_loop_lag(intended, 0.0002)
    metrics.on_cpu(START + 1, 97.0)
    metrics.on_cpu(START + 2, 40.0)
    report = metrics.freeze(CONFIG)
    h = report.harness
    assert h.send_lag is not None and 45 <= h.send_lag.quantiles["p99"] <= 55
    assert h.behind and h.cpu_saturated_s == 1 and h.cpu_peak_percent == 97.0
    out = text.render(report).splitlines()
    assert out[0].startswith("WARNING: the harness fell behind (its own lag p99 5")
    assert out[1].startswith("WARNING: the harness's CPU was saturated in 1 s")
    assert any(line.startswith("  harness: send lag p99 5") for line in out)
    page = html.render(report)
    assert page.index('class="warn"') < page.index("<h2>")  # at the top of the page
    calm = Metrics(START)
    calm.on_sent(START, START + 0.001)
    calm.on_done("OK", START, START + 0.001, START + 0.002)
    quiet = calm.freeze(CONFIG)
    assert not quiet.harness.warnings() and "WARNING" not in text.render(quiet)
    assert 'class="warn"' not in html.render(quiet)
