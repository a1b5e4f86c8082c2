"""`make demo` end to end (shortened): the example server reaches level 3, sheds non-core
calls, keeps serving Ping, serves non-core calls again after the load, is back at level 1
or below, and says so in its last line; its page, rendered in headless Chromium, draws every
chart, per stream, with no script error; and a demo that cannot reach level 3 says that instead
and exits 1. The full demo (what `make demo` runs) is a drill."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from memcontract.loadtest.report.jsonfmt import SCHEMA

from .browser import inspect_page

ROOT = Path(__file__).resolve().parent.parent
SUCCESS = re.compile(
    r"demo: peak level 3, non-core shed (\d+), core success ([\d.]+)%, non-core served again "
    r"(\d+) s, back to level 1 in (\d+) s after the load stopped; report (\S+)\.json (\S+)\.html"
)


def run_demo(*args: str, timeout: float = 110) -> subprocess.CompletedProcess[str]:
    """`make demo DEMO_ARGS=...` with this interpreter's venv (the stamp taken as fresh)."""
    command = [
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.installed",
        f"BIN={Path(sys.executable).parent}",
        "demo",
        f"DEMO_ARGS={' '.join(args)}",
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def short_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """`make demo DEMO_ARGS=--short` run once: (its reports' NAME, its stdout lines)."""
    name = tmp_path_factory.mktemp("demo") / "demo"
    return name, finished_demo(name, "--short")


@pytest.mark.drill
@pytest.mark.timeout(180)
def test_the_full_demo_reaches_level_3_and_recovers(tmp_path: Path) -> None:
    # What `make demo` runs: the 25 s ramp, not the 10 s one.
    lines = finished_demo(tmp_path / "demo", timeout=170)
    match = SUCCESS.fullmatch(lines[-1])
    assert match, lines[-1]
    assert float(match[2]) >= 90.0 and 1 <= int(match[4]) <= 15


def finished_demo(name: Path, *args: str, timeout: float = 110) -> list[str]:
    """Run the demo with ``args``, its reports to ``name``; its stdout lines (exit status 0)."""
    done = run_demo(*args, "--out", str(name), timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()


@pytest.mark.timeout(120)
def test_short_demo_reaches_level_3_and_recovers(short_demo: tuple[Path, list[str]]) -> None:
    name, lines = short_demo
    tmp_path = name.parent
    match = SUCCESS.fullmatch(lines[-1])
    assert match, lines[-1]
    shed, core, served, back = int(match[1]), float(match[2]), int(match[3]), int(match[4])
    assert shed > 0 and core >= 90.0 and 1 <= served <= 20
    assert 1 <= back <= 15  # level 1 or below within 15 s of the load's end
    assert match[5] == match[6] == str(name)
    # plain lines (stdout is not a terminal): one per second, level 3 among them
    assert any(re.search(r"\| usage +[\d.]+% level 3$", line) for line in lines)
    assert any("the load stopped" in line for line in lines)
    for path in (name.with_suffix(".json"), *(tmp_path.glob("demo.*.json"))):
        jsonschema.validate(json.loads(path.read_text()), SCHEMA)
    merged = json.loads(name.with_suffix(".json").read_text())
    assert len(merged["sources"]) == 3
    streams = [
        json.loads((tmp_path / f"demo.{k}.json").read_text())
        for k in ("report", "ping", "getstock")
    ]
    assert merged["totals"]["sent"] == sum(s["totals"]["sent"] for s in streams)
    shed_counts = sum(
        st["count"] for s in streams for st in s["statuses"] if st["code"] == "RESOURCE_EXHAUSTED"
    )
    assert shed_counts == shed
    # The merged report keeps the three streams apart, exactly, and marks what happened.
    assert [(s["config"]["method"].rsplit("/", 1)[1], s["totals"]["sent"]) for s in merged[
        "streams"
    ]] == [("Report", streams[0]["totals"]["sent"]), ("Ping", streams[1]["totals"]["sent"]), (
        "GetStock", streams[2]["totals"]["sent"]
    )]  # fmt: skip
    events = {(e["kind"], e["stream"], e["level"]) for e in merged["events"]}
    assert ("stop", "Report", None) in events
    assert ("server-level", "", 3) in events  # the server's own transition (WatchPressure)
    assert ("level", "GetStock", 3) in events  # and as the trailers said it
    html = name.with_suffix(".html").read_text()
    assert "<title>memcontract loadtest: Report, Ping, GetStock on 127.0.0.1:" in html
    assert "GetStock: answers by status" in html and "RESOURCE_EXHAUSTED" in html
    assert name.with_suffix(".csv").stat().st_size > 0


@pytest.mark.timeout(600)  # the first use may apt-get install Chromium
def test_the_demo_page_draws_every_chart_in_a_browser(
    short_demo: tuple[Path, list[str]], tmp_path: Path
) -> None:
    name, _ = short_demo
    rendered = inspect_page(name.with_suffix(".html"), tmp_path)
    assert rendered.errors == []
    assert len(rendered.charts) == 10  # 3 streams' answers, sent, p99, usage, level, 2 harness, pct
    assert all(chart["drawn"] >= 1 for chart in rendered.charts), rendered.charts
    by_stream = {c["stream"]: c for c in rendered.charts if c["stream"]}
    assert set(by_stream) == {"Report", "Ping", "GetStock"}
    assert by_stream["GetStock"]["drawn"] == 2  # OK and RESOURCE_EXHAUSTED, both drawn
    dom = rendered.dom
    ping = re.search(r'<svg[^>]*data-stream="Ping".*?</svg>', dom, re.S)
    assert ping and 'data-series="OK"' in ping[0]  # Ping: served throughout
    assert 'data-series="RESOURCE_EXHAUSTED"' not in ping[0]
    assert dom.count('<g class="marker">') >= 9 * 3  # events marked on every time chart
    # The status table, a row per stream: Ping never shed, Report and GetStock shed.
    rows = {m[1]: m[2] for m in re.finditer(r"<tr><td><b>(\w[\w ]*)</b></td>(.*?)</tr>", dom, re.S)}
    assert {"Report", "Ping", "GetStock", "all streams"} <= set(rows), rows
    assert '<td class="n shed">' not in rows["Ping"]
    assert '<td class="n shed">' in rows["Report"] and '<td class="n shed">' in rows["GetStock"]
    assert by_stream["Report"]["drawn"] == 2  # Report: OK and shed, both drawn
    assert "budget 100%" in dom  # the usage chart's budget line


@pytest.mark.timeout(120)
def test_demo_says_so_when_level_3_is_not_reached(tmp_path: Path) -> None:
    roomy = tmp_path / "roomy.yaml"
    contract = (ROOT / "examples/contracts/demo.yaml").read_text()
    roomy_budget = contract.replace("max_heap_mb: 96", "max_heap_mb: 4096")
    # and a growth rate no report reaches (30,000 rows can grow 64 MiB/s: level 1)
    roomy.write_text(
        roomy_budget.replace("alloc_rate_mb_per_sec: 64", "alloc_rate_mb_per_sec: 4096")
    )
    done = run_demo(
        "--short",
        "--load",
        "3",
        "--watch",
        "2",
        "--contract",
        str(roomy),
        "--out",
        str(tmp_path / "d"),
        "--metrics-port",
        "0",
    )
    last = done.stdout.strip().splitlines()[-1]
    # the server served /metrics on a port of its own choosing, and the demo said where
    assert re.search(r"and: curl -s http://127\.0\.0\.1:\d+/metrics", done.stdout)
    assert done.returncode == 2 and "Error 1" in done.stderr, done.stdout + done.stderr  # make's
    assert last.startswith(
        "demo: FAILED (level 3 not reached; no non-core call shed): peak level 0"
    )
    assert "non-core never shed" in last and SUCCESS.fullmatch(last) is None
