"""A real Prometheus scrapes the real example server's /metrics (``--metrics-port``), with the
memcontract rules loaded; the server runs under a contract whose budget (8 MiB) is far below
what a Python gRPC server holds, so its own probe takes it to level 3 (no fake anywhere).
Prometheus's HTTP API must then return level 3 for that target, every rule must evaluate, and
every panel of the Grafana dashboard must run without error.

Cost: about 10 s (Prometheus and the server start, three samples, two scrapes).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .metrics_support import families, scrape
from .prometheus_support import REPO, Prometheus, poll

DASHBOARD = REPO / "deploy" / "grafana" / "memcontract.json"
PYTHON_JOB = "python-example"
LEVEL3_TIMEOUT_S = 60.0
#: What Grafana puts in place of its variables when the dashboard runs.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$job": ".*",
    "$instance": ".*",
}

pytestmark = pytest.mark.timeout(900)  # a first run may install Prometheus with apt-get


def tiny_contract(path: Path) -> Path:
    """The example contract with an 8 MiB budget for the inventory module."""
    contract = yaml.safe_load((REPO / "examples" / "python" / "memory_contract.yaml").read_text())
    for module in contract["modules"]:
        if module["name"] == "inventory":
            module["max_heap_mb"] = 8
    path.write_text(yaml.safe_dump(contract))
    return path


def _read_lines(proc: subprocess.Popen[str], count: int, timeout: float) -> list[str]:
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for _ in range(count):
            lines.append(proc.stdout.readline().strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return lines


@pytest.fixture(scope="module")
def python_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example server under the tiny contract; yields its /metrics ``host:port``."""
    workdir = tmp_path_factory.mktemp("python-server")
    contract = tiny_contract(workdir / "contract.yaml")
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.python.server", "--port", "0", "--metrics-port", "0",
         "--contract", str(contract), "--module", "inventory"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    try:
        lines = _read_lines(proc, 2, 30)
        assert len(lines) == 2 and lines[1].startswith("metrics http://"), (
            f"{lines}: {(workdir / 'server.log').read_text()}"
        )
        url = lines[1].split()[1]
        yield url.removeprefix("http://").removesuffix("/metrics")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, python_server: str
) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("prometheus")
    with Prometheus(workdir, {PYTHON_JOB: [python_server]}) as prom:
        yield prom


def level_of(prom: Prometheus, job: str) -> list[dict[str, Any]]:
    return prom.query(f'memcontract_level{{job="{job}"}} == 3')


def test_the_example_servers_own_metrics_say_level_3(python_server: str) -> None:
    def at_level3() -> bool:
        found = families(scrape(f"http://{python_server}/metrics"))
        return found["memcontract_level"].value() == 3

    poll("the example server reaches level 3", at_level3, LEVEL3_TIMEOUT_S)
    found = families(scrape(f"http://{python_server}/metrics"))
    assert found["memcontract_memory_budget_bytes"].value() == 8 * 1048576
    assert found["memcontract_memory_used_bytes"].value() > 8 * 1048576
    assert found["memcontract_contract_info"].value(module="inventory", version="demo-1") == 1


def test_prometheus_returns_level_3_for_the_python_target(
    prometheus: Prometheus, python_server: str
) -> None:
    result = poll(
        "Prometheus has level 3 for the target",
        lambda: level_of(prometheus, PYTHON_JOB),
        LEVEL3_TIMEOUT_S,
    )
    assert [(r["metric"]["instance"], r["value"][1]) for r in result] == [(python_server, "3")]
    up = prometheus.query(f'up{{job="{PYTHON_JOB}"}}')
    assert [r["value"][1] for r in up] == ["1"]


def test_every_rule_evaluates_and_the_records_see_the_target(prometheus: Prometheus) -> None:
    poll("level 3 scraped", lambda: level_of(prometheus, PYTHON_JOB), LEVEL3_TIMEOUT_S)

    def rules() -> list[dict[str, Any]] | None:
        groups = prometheus.api("rules")["groups"]
        found = [rule for group in groups for rule in group["rules"]]
        return found if found and all(r["health"] == "ok" for r in found) else None

    evaluated = poll("every rule evaluated once", rules, LEVEL3_TIMEOUT_S)
    assert len(evaluated) == 9
    shed = poll(
        "the shed rate recorded",
        lambda: prometheus.query(f'job_class:memcontract_shed:rate5m{{job="{PYTHON_JOB}"}}'),
        LEVEL3_TIMEOUT_S,
    )
    assert {r["metric"]["class"] for r in shed} == {"core", "noncore"}


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def grafana_expanded(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"a variable the test does not know: {expr}"
    return expr


def test_every_dashboard_query_runs(prometheus: Prometheus) -> None:
    poll("level 3 scraped", lambda: level_of(prometheus, PYTHON_JOB), LEVEL3_TIMEOUT_S)
    queries = dashboard_queries()
    assert len(queries) >= 9
    results = {}
    for title, expr in queries:
        data = prometheus.api("query_range", query=grafana_expanded(expr), start=str(_now() - 60),
                              end=str(_now()), step="1")  # fmt: skip
        results[(title, expr)] = data["result"]
    level = next(v for (title, _), v in results.items() if title == "Breach level")
    assert level and level[0]["values"][-1][1] == "3"
    top = next(v for (title, _), v in results.items() if title.startswith("Top services"))
    assert {r["metric"]["job"] for r in top} == {PYTHON_JOB}


def test_dashboard_variables_resolve(prometheus: Prometheus) -> None:
    poll("level 3 scraped", lambda: level_of(prometheus, PYTHON_JOB), LEVEL3_TIMEOUT_S)
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    for variable in (v for v in variables if v["type"] == "query"):
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector, label = grafana_expanded(match[1]), match[2]
        values = prometheus.api(f"label/{label}/values", **{"match[]": selector})
        assert values, f"{variable['name']}: no values for {selector}"


def _now() -> float:
    import time

    return time.time()
