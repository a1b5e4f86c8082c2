"""The Go library's /metrics (package prommetrics) against the Python library's: the same
families with the same types and label keys for the same pressure state; and a real Prometheus
scraping the Go example service at level 3.

Cost: about 5 s once the Go binaries are built (the build is shared through Go's cache).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from memcontract import Contract, Guard
from memcontract.metrics import meter_provider
from memcontract.testing import FakeClock, FakeProbe

from .go_support import GO_CONTRACT, GODIR, GoServer, child_env, unavailable
from .metrics_support import EVENT_FAMILIES, FAMILIES, Family, families, scrape
from .prometheus_support import Prometheus, poll
from .test_prometheus import LEVEL3_TIMEOUT_S, dashboard_queries, grafana_expanded

GO_JOB = "go-example"
#: (usages, one a sample; the cgroup limit in MiB the probe reports, 0 for none)
STATES = {
    "calm": ((0.42,), 0),
    "calm under a cgroup limit": ((0.42,), 128),
    "level 3": ((0.42, 0.97, 0.97, 0.97), 128),
}


COMMANDS = ("inventory", "metricsdump")


@pytest.fixture(scope="module")
def go_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two example commands these tests run (not all of ./cmd/...: linking is most of it)."""
    outdir, go = tmp_path_factory.mktemp("gobin"), shutil.which("go")
    if go is None:
        unavailable("no 'go' on PATH")
    packages = [f"./cmd/{name}" for name in COMMANDS]
    done = subprocess.run(
        [go, "build", "-o", f"{outdir}/", *packages],
        cwd=GODIR, env=child_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"go build {' '.join(packages)} failed:\n{done.stderr.strip()}", pytrace=False)
    return outdir


def go_exposition(go_bin: Path, usages: tuple[float, ...], limit_mb: int) -> dict[str, Family]:
    done = subprocess.run(
        [str(go_bin / "metricsdump"), "-contract", str(GO_CONTRACT), "-module", "inventory",
         "-usage", ",".join(map(str, usages)), "-cgroup-limit-mb", str(limit_mb)],
        env=child_env(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return families(done.stdout)


def python_exposition(usages: tuple[float, ...], limit_mb: int) -> dict[str, Family]:
    """The same contract and steps through a Python guard over a FakeProbe."""
    registry = CollectorRegistry()
    probe, clock = FakeProbe(estimate_rate=True), FakeClock()
    contract = Contract.load(GO_CONTRACT, module="inventory")
    guard = Guard(contract, probe=probe, clock=clock, meter_provider=meter_provider(registry))
    try:
        probe.set(usage=0.0, capacity_mb=limit_mb or None, limit_mb=limit_mb or None)
        guard.sample_once()
        for usage in usages:
            probe.set(usage=usage)
            clock.advance(contract.module.sample_interval)
            guard.sample_once()
        return families(generate_latest(registry).decode())
    finally:
        guard.stop()


def shapes(found: dict[str, Family]) -> dict[str, tuple[str, frozenset[str]]]:
    return {name: (family.type, family.label_keys) for name, family in found.items()}


@pytest.mark.parametrize("state", STATES, ids=list(STATES))
def test_go_and_python_expose_the_same_families(go_bin: Path, state: str) -> None:
    usages, limit_mb = STATES[state]
    go, python = go_exposition(go_bin, usages, limit_mb), python_exposition(usages, limit_mb)
    for found in (go, python):
        assert {name: FAMILIES.get(name) for name in shapes(found)} == shapes(found)
    assert go.keys() - EVENT_FAMILIES == python.keys() - EVENT_FAMILIES
    assert go["memcontract_level"].value() == python["memcontract_level"].value()
    for name in ("memcontract_memory_capacity_bytes", "memcontract_memory_budget_bytes"):
        assert go[name].value() == python[name].value(), name
    if limit_mb:
        assert go["memcontract_memory_limit_bytes"].value() == limit_mb * 1048576
    for name in ("memcontract_shed_total", "memcontract_fast_fail_total"):
        assert {s[0]["class"] for s in go[name].samples} == {"core", "noncore"}


def test_the_comparison_sees_a_difference(go_bin: Path) -> None:
    """The same Go exposition with a family renamed and a label key added no longer matches."""
    usages, limit_mb = STATES["level 3"]
    go = go_exposition(go_bin, usages, limit_mb)
    go["memcontract_shed_calls_total"] = go.pop("memcontract_shed_total")
    level = go["memcontract_level"]
    go["memcontract_level"] = Family(level.type, level.label_keys | {"module"}, level.samples)
    assert {name: FAMILIES.get(name) for name in shapes(go)} != shapes(go)


@pytest.fixture(scope="module")
def go_server(go_bin: Path) -> Iterator[str]:
    """The Go inventory service forced to level 3, serving /metrics; yields its address."""
    argv = [
        str(go_bin / "inventory"),
        *("-contract", str(GO_CONTRACT), "-module", "inventory"),
        *("-force-usage", "0.97", "-force-level", "3", "-metrics-listen", "127.0.0.1:0"),
    ]
    with GoServer(argv) as server:
        (metrics,) = server.wait_events("metrics", 1)
        yield f"127.0.0.1:{int(metrics['port'])}"


@pytest.mark.timeout(900)  # a first run may install Prometheus with apt-get
def test_prometheus_returns_level_3_for_the_go_target(
    go_server: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    found = families(scrape(f"http://{go_server}/metrics"))
    assert found["memcontract_level"].value() == 3
    workdir = tmp_path_factory.mktemp("prometheus-go")
    with Prometheus(workdir, {GO_JOB: [go_server]}) as prometheus:
        result = poll(
            "Prometheus has level 3 for the Go target",
            lambda: prometheus.query(f'memcontract_level{{job="{GO_JOB}"}} == 3'),
            LEVEL3_TIMEOUT_S,
        )
        assert [(r["metric"]["instance"], r["value"][1]) for r in result] == [(go_server, "3")]
        for _, expr in dashboard_queries():
            prometheus.api("query", query=grafana_expanded(expr))
        shed = poll(
            "the shed rate recorded for the Go target",
            lambda: prometheus.query(f'job_class:memcontract_shed:rate5m{{job="{GO_JOB}"}}'),
            LEVEL3_TIMEOUT_S,
        )
        assert {r["metric"]["class"] for r in shed} == {"core", "noncore"}
