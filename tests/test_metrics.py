"""The Prometheus exposition of the guard's telemetry (memcontract.metrics, the prometheus extra).

A guard over a FakeProbe reports to its own prometheus_client registry; the text that registry
renders is what /metrics serves. The end-to-end path (serve_prometheus in the example server,
scraped by a real Prometheus) is in test_prometheus.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from memcontract.callees import CalleeTable
from memcontract.errors import MetricsError
from memcontract.metrics import meter_provider, serve_prometheus
from memcontract.testing import FakeClock

from .grpc_support import Calls, call_sync, serve
from .metrics_support import FAMILIES, Family, families
from .support import Rig, make_contract

MIB = 1048576
OPERATIONS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
CORE = "/test.Echo/Core"

#: Every family a guard always exposes: name -> (type, label keys).
ALWAYS: dict[str, tuple[str, frozenset[str]]] = {
    "memcontract_memory_usage_ratio": ("gauge", frozenset()),
    "memcontract_memory_used_bytes": ("gauge", frozenset()),
    "memcontract_memory_capacity_bytes": ("gauge", frozenset()),
    "memcontract_memory_budget_bytes": ("gauge", frozenset()),
    "memcontract_level": ("gauge", frozenset()),
    "memcontract_contract_info": ("gauge", frozenset({"module", "version"})),
    "memcontract_time_at_level_seconds_total": ("counter", frozenset({"level"})),
    "memcontract_shed_total": ("counter", frozenset({"class"})),
    "memcontract_shed_dry_run_total": ("counter", frozenset({"class"})),
    "memcontract_fast_fail_total": ("counter", frozenset({"class"})),
    "memcontract_shed_half_open_admitted_total": ("counter", frozenset()),
    "memcontract_recycles_total": ("counter", frozenset()),
    "memcontract_peer_untrusted_total": ("counter", frozenset()),
}
#: Reported below level 2 only (telemetry paused at level 2), where the probe has them.
NON_ESSENTIAL = {
    "memcontract_memory_alloc_rate_bytes_per_second": ("gauge", frozenset()),
    "memcontract_memory_psi_ratio": ("gauge", frozenset()),
    "memcontract_gc_pause_p99_seconds": ("gauge", frozenset()),
}


def exposed_rig(**contract: object) -> tuple[Rig, CollectorRegistry]:
    registry = CollectorRegistry()
    rig = Rig(
        make_contract(core_methods=(CORE,), **contract), meter_provider=meter_provider(registry)
    )
    return rig, registry


def exposition(registry: CollectorRegistry) -> dict[str, Family]:
    return families(generate_latest(registry).decode())


def shape(found: dict[str, Family]) -> dict[str, tuple[str, frozenset[str]]]:
    return {name: (family.type, family.label_keys) for name, family in found.items()}


def test_calm_process_exposes_every_family_with_base_units() -> None:
    rig, registry = exposed_rig()
    rig.step(0.42, limit_mb=128, alloc_rate_mb=2, psi=12.5, gc_pause_p99_ms=4)
    found = exposition(registry)
    optional = {"memcontract_memory_live_bytes", "memcontract_memory_retained_plateau_bytes"}
    without_optional = {n: s for n, s in shape(found).items() if n not in optional}
    assert without_optional == ALWAYS | NON_ESSENTIAL | {
        "memcontract_memory_limit_bytes": ("gauge", frozenset())
    }
    assert found["memcontract_level"].value() == 0
    assert found["memcontract_memory_usage_ratio"].value() == 0.42
    assert found["memcontract_memory_used_bytes"].value() == round(0.42 * 100 * MIB)
    assert found["memcontract_memory_capacity_bytes"].value() == 100 * MIB
    assert found["memcontract_memory_budget_bytes"].value() == 100 * MIB
    assert found["memcontract_memory_limit_bytes"].value() == 128 * MIB
    assert found["memcontract_memory_alloc_rate_bytes_per_second"].value() == 2 * MIB
    assert found["memcontract_memory_psi_ratio"].value() == 0.125
    assert found["memcontract_gc_pause_p99_seconds"].value() == 0.004
    assert found["memcontract_contract_info"].value(module="test-module", version="v1.2") == 1
    for name in ("memcontract_shed_total", "memcontract_fast_fail_total"):
        assert found[name].value(**{"class": "core"}) == 0
        assert found[name].value(**{"class": "noncore"}) == 0


def test_level3_pauses_the_non_essential_gauges_and_a_limit_below_the_budget_binds() -> None:
    rig, registry = exposed_rig()
    for _ in range(3):
        rig.step(0.97, capacity_mb=64, limit_mb=64, psi=40.0, gc_pause_p99_ms=9)
    found = exposition(registry)
    assert found["memcontract_level"].value() == 3
    assert NON_ESSENTIAL.keys().isdisjoint(found)
    assert found["memcontract_memory_capacity_bytes"].value() == 64 * MIB
    assert found["memcontract_memory_limit_bytes"].value() == 64 * MIB
    assert found["memcontract_memory_budget_bytes"].value() == 100 * MIB


def test_no_cgroup_limit_no_limit_series() -> None:
    rig, registry = exposed_rig()
    rig.step(0.5)
    assert "memcontract_memory_limit_bytes" not in exposition(registry)


def test_time_at_level_counts_the_guards_clock_by_level() -> None:
    rig, registry = exposed_rig()
    rig.step(0.5)  # level 0; each step advances 0.5 s, then samples
    for _ in range(3):
        rig.step(0.97)  # 1, 2, 3 (confirmations 1, 2, 3)
    rig.clock.advance(2.0)
    time_at = exposition(registry)["memcontract_time_at_level_seconds_total"]
    assert [time_at.value(level=str(n)) for n in range(4)] == [1.0, 0.5, 0.5, 2.0]


def test_live_and_plateau_are_exposed_only_where_the_snapshot_has_them() -> None:
    rig, registry = exposed_rig()
    rig.step(0.5)  # the probe reads no live memory
    found = exposition(registry)
    assert "memcontract_memory_live_bytes" not in found
    assert "memcontract_memory_retained_plateau_bytes" not in found
    for _ in range(6):  # level 3 on used memory, then left on live memory: a plateau
        rig.step(0.97, live=0.20)
    pressure = rig.guard.pressure
    assert pressure.live_bytes is not None and pressure.plateau_bytes is not None
    found = exposition(registry)
    assert found["memcontract_memory_live_bytes"].value() == pressure.live_bytes
    assert found["memcontract_memory_retained_plateau_bytes"].value() == pressure.plateau_bytes


def test_sheds_and_fast_fails_are_counted_by_class_over_real_grpc() -> None:
    server, registry = exposed_rig(retry_pushback_ms=300)
    for _ in range(3):
        server.step(0.97)
    client, client_registry = exposed_rig()
    client.step(0.1)
    peers = CalleeTable(ttl=60.0, default_pushback_ms=5000, clock=FakeClock().monotonic)
    from memcontract.interceptors import client_interceptor

    with serve("sync", server.guard, Calls()) as address:
        channel = grpc.intercept_channel(
            grpc.insecure_channel(address), client_interceptor(client.guard, address, peers=peers)
        )
        with channel:
            codes = [call_sync(channel, arity, b"ok")[0] for arity in ("UnaryUnary", "Core")]
            fast_failed = call_sync(channel, "UnaryUnary", b"ok")[0]
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OK]
    assert fast_failed == grpc.StatusCode.RESOURCE_EXHAUSTED
    shed = exposition(registry)["memcontract_shed_total"]
    assert (shed.value(**{"class": "noncore"}), shed.value(**{"class": "core"})) == (1, 0)
    fast = exposition(client_registry)["memcontract_fast_fail_total"]
    assert (fast.value(**{"class": "noncore"}), fast.value(**{"class": "core"})) == (1, 0)


def test_probe_failures_by_source() -> None:
    rig, registry = exposed_rig()
    rig.step(fail=True)
    failures = exposition(registry)["memcontract_probe_failures_total"]
    assert failures.label_keys == {"source"} and failures.value(source="read") == 1


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"pip install 'memcontract\[prometheus\]'"):
        serve_prometheus(0)
    with pytest.raises(ImportError, match=r"'prometheus' extra \(prometheus_client is missing\)"):
        meter_provider()


def test_bad_port_is_one_clear_error() -> None:
    with pytest.raises(MetricsError, match=r"port must be 0 .* to 65535, got 70000"):
        serve_prometheus(70000)


def test_a_nonsense_limit_is_a_bad_reading_not_a_series() -> None:
    rig, registry = exposed_rig()
    rig.step(0.5)
    rig.probe.limit_bytes = -1
    rig.step(0.99)
    found = exposition(registry)
    assert found["memcontract_probe_failures_total"].value(source="reading") == 1
    assert found["memcontract_memory_usage_ratio"].value() == 0.5  # the level held
    assert "memcontract_memory_limit_bytes" not in found


def test_every_exposed_family_is_a_documented_one() -> None:
    rig, registry = exposed_rig()
    rig.step(0.42, limit_mb=128, alloc_rate_mb=2, psi=12.5, gc_pause_p99_ms=4)
    seen = shape(exposition(registry))
    rig.step(fail=True)
    for _ in range(3):
        rig.step(0.97, capacity_mb=64, limit_mb=64)
    seen |= shape(exposition(registry))
    assert {name: FAMILIES.get(name) for name in seen} == seen
    documented = re.findall(
        r"^\| `(memcontract_\w+)` \| (\w+) \|", OPERATIONS.read_text(), re.MULTILINE
    )
    assert {name: kind for name, kind in documented} == {n: k for n, (k, _) in FAMILIES.items()}
