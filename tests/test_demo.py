"""`make demo` end to end (shortened): the example server reaches level 3, sheds non-core
calls, keeps serving Ping, serves non-core calls again after the load, and says so in its last
line; and a demo that cannot reach level 3 says that instead and exits 1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from memcontract.loadtest.report.jsonfmt import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
SUCCESS = re.compile(
    r"demo: peak level 3, non-core shed (\d+), core success ([\d.]+)%, non-core served again "
    r"(\d+) s after the load stopped; report (\S+)\.json (\S+)\.html"
)


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
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
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=110)


@pytest.mark.timeout(120)
def test_short_demo_reaches_level_3_and_recovers(tmp_path: Path) -> None:
    name = tmp_path / "demo"
    done = run_demo("--short", "--out", str(name))
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    match = SUCCESS.fullmatch(lines[-1])
    assert match, lines[-1]
    shed, core, served = int(match[1]), float(match[2]), int(match[3])
    assert shed > 0 and core >= 90.0 and 1 <= served <= 20
    assert match[4] == match[5] == str(name)
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
    html = name.with_suffix(".html").read_text()
    assert "GetStock: answers by status" in html and "RESOURCE_EXHAUSTED" in html
    assert name.with_suffix(".csv").stat().st_size > 0


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
    )
    last = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 2 and "Error 1" in done.stderr, done.stdout + done.stderr  # make's
    assert last.startswith(
        "demo: FAILED (level 3 not reached; no non-core call shed): peak level 0"
    )
    assert "non-core never shed" in last and SUCCESS.fullmatch(last) is None
