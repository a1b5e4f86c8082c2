"""Level 3 must end (docs/design.md §4), stepped with FakeProbe and FakeClock: memory handed back on
entry and when usage stalls, half-open shedding that grows while usage does not climb and closes the
moment it climbs, ``on_stuck: recycle``, and one allocation report per level per episode."""

from __future__ import annotations

import logging
import threading
import tracemalloc
from collections.abc import Iterator

import grpc
import pytest
from memcontract.interceptors.sides import ServerSide

from memcontract import Level, recovery
from memcontract.actions import SampleAllocations
from memcontract.allocations import format_bytes
from memcontract.recovery import FIRST_FRACTION, Phase, Released, release_memory
from memcontract.telemetry import FAST_FAILS, HALF_OPEN_ADMITS, RECYCLES, RELEASES, SHEDS

from .support import Metrics, Rig, make_contract

HIGH = 1.10  # over budget: level 3 holds however long it stays here
STALL = 3  # samples without falling or climbing before a release, then before going half-open


@pytest.fixture(autouse=True)
def _no_report_from_an_earlier_test() -> None:
    """A report still being built for an earlier test's guard would log into this one's."""
    for thread in threading.enumerate():
        if thread.name == "memcontract-allocations":
            thread.join(30)


@pytest.fixture
def releases(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count releases without running a real gc.collect() per test."""
    calls: list[int] = []

    def fake(telemetry: object = None) -> Released:
        calls.append(1)
        return Released(0, None, 0.0)

    monkeypatch.setattr("memcontract.guard.release_memory", fake)
    return calls


def critical_rig(**fields: object) -> Rig:
    rig = Rig(make_contract(**fields))
    rig.run([HIGH] * 3)
    assert rig.guard.level == Level.CRITICAL
    return rig


def admits(rig: Rig) -> float:
    return rig.guard.snapshot.admit


def stuck(rig: Rig) -> Rig:
    """Hold usage flat until the release, then until shedding goes half-open."""
    for _ in range(STALL - 1):
        rig.step(HIGH)
    return rig


# --- half-open admission ----------------------------------------------------------------------


def test_flat_usage_releases_memory_then_goes_half_open(releases: list[int]) -> None:
    rig = critical_rig()
    assert (admits(rig), rig.guard._recovery.phase) == (0.0, Phase.SHEDDING)  # type: ignore[union-attr]
    fractions = [admits(rig) for _ in range(STALL) if rig.step(HIGH) is not None]
    assert fractions == [0.0] * STALL and len(releases) == 1  # stalled: memory handed back
    fractions = [admits(rig) for _ in range(STALL) if rig.step(HIGH) is not None]
    assert fractions == [0.0, 0.0, FIRST_FRACTION]  # stalled again: stuck, half-open
    assert [admits(rig) for _ in range(4) if rig.step(HIGH) is not None] == [0.25, 0.5, 1.0, 1.0]
    # the wire stays honest: peers still see level 3 and the real usage
    assert rig.guard.pressure.level == Level.CRITICAL
    assert rig.guard.pressure.usage_ratio == HIGH
    assert rig.guard.snapshot.shedding


def test_half_open_and_flat_releases_again_less_and_less_often(releases: list[int]) -> None:
    rig = critical_rig()
    for _ in range(2 * STALL):
        rig.step(HIGH)
    assert (admits(rig), len(releases)) == (FIRST_FRACTION, 1)
    at: list[int] = []
    for sample in range(1, 50):
        before = len(releases)
        rig.step(HIGH)
        if len(releases) > before:
            at.append(sample)
    assert at == [STALL, STALL + 2 * STALL, STALL + 6 * STALL, STALL + 14 * STALL]
    assert admits(rig) == 1.0


def test_a_climb_closes_half_open_at_once_and_the_watch_starts_over(releases: list[int]) -> None:
    rig = critical_rig()
    for _ in range(2 * STALL + 1):
        rig.step(HIGH)
    assert admits(rig) == 0.25
    rig.step(HIGH + 0.02)  # usage climbs by more than the tolerance
    assert admits(rig) == 0.0
    assert rig.guard._recovery.phase is Phase.SHEDDING  # type: ignore[union-attr]
    # flat again at the new level: release again, then half-open from the first fraction
    levels = [admits(rig) for _ in range(2 * STALL) if rig.step(HIGH + 0.02) is not None]
    assert levels == [0.0] * (2 * STALL - 1) + [FIRST_FRACTION]
    assert len(releases) == 2


def test_growth_rate_counts_as_climbing(releases: list[int]) -> None:
    rig = critical_rig()
    for _ in range(2 * STALL + 2):
        rig.step(HIGH)
    assert admits(rig) > 0
    rig.step(HIGH, alloc_rate_mb=5)  # flat usage but growing at half the promised 10 MiB/s
    assert admits(rig) == 0.0


def test_noise_below_the_tolerance_does_not_close(releases: list[int]) -> None:
    rig = critical_rig()
    for _ in range(2 * STALL):
        rig.step(HIGH)
    assert admits(rig) == FIRST_FRACTION
    rig.step(HIGH + 0.005)
    rig.step(HIGH - 0.003)
    assert admits(rig) == FIRST_FRACTION * 4


def test_falling_usage_waits_and_level_below_3_ends_it(releases: list[int]) -> None:
    rig = critical_rig()
    for usage in (1.08, 1.06, 1.04, 1.02, 1.00, 0.98):  # still falling: nothing to do yet
        rig.step(usage)
    assert (admits(rig), releases) == (0.0, [])
    for _ in range(2 * STALL):
        rig.step(0.98)
    assert admits(rig) == FIRST_FRACTION
    steps = [rig.step(0.5) for _ in range(5)]  # recover_after = 5
    assert steps[-1] == 2 and admits(rig) == 0.0
    assert rig.guard._recovery.phase is Phase.CLOSED  # type: ignore[union-attr]


def test_disabling_recover_keeps_shedding(releases: list[int]) -> None:
    rig = Rig(make_contract(), disable={"recover"})
    rig.run([HIGH] * 30)
    assert (rig.guard.level, admits(rig), releases) == (Level.CRITICAL, 0.0, [])


def test_dry_run_neither_releases_nor_sheds(releases: list[int]) -> None:
    rig = critical_rig(dry_run=True)
    rig.run([HIGH] * 10)
    assert releases == [] and not rig.guard.snapshot.shedding


def test_a_failing_release_never_breaks_the_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(telemetry: object = None) -> Released:
        raise OSError("no")

    monkeypatch.setattr("memcontract.guard.release_memory", broken)
    rig = critical_rig()
    rig.run([HIGH] * STALL)  # stalled: the release raises
    assert rig.guard.telemetry.by_attribute[("memcontract.hook.errors", "hook", "recover")] == 1
    assert admits(rig) == 0.0 and rig.guard.level == Level.CRITICAL
    assert rig.step(0.5) == Level.CRITICAL  # still sampling


def test_the_server_admits_exactly_the_fraction_evenly() -> None:
    rig = critical_rig()
    side = ServerSide(rig.guard, None)
    method = "/shop.Cart/Add"
    assert [side.sheds(rig.guard.snapshot, method) for _ in range(4)] == [True] * 4
    rig.guard.snapshot = rig.guard._publish(rig.guard.pressure, 0.25)
    decisions = [side.sheds(rig.guard.snapshot, method) for _ in range(12)]
    assert decisions.count(False) == 3 and decisions[3::4] == [False] * 3
    counts = rig.guard.telemetry.counts
    assert (counts[HALF_OPEN_ADMITS], counts[SHEDS]) == (3, 4 + 9)
    assert not side.sheds(rig.guard.snapshot, "/grpc.health.v1.Health/Check")  # core: never


# --- memory handed back -----------------------------------------------------------------------


def test_entering_level3_releases_memory_and_counts_the_trim() -> None:
    rig = critical_rig()
    counted = {k[2]: v for k, v in rig.guard.telemetry.by_attribute.items() if k[0] == RELEASES}
    expected = "unavailable" if recovery.malloc_trim() is None else {"released", "nothing"}
    assert sum(counted.values()) == 1
    assert set(counted) <= (expected if isinstance(expected, set) else {expected})


def test_the_release_is_exported_by_its_published_name() -> None:
    """What an exporter sees of the release on entering level 3 (the OpenTelemetry reader,
    not the guard's own counts): one ``memcontract.memory.releases`` with its ``result``."""
    metrics = Metrics()
    rig = Rig(make_contract(), meter_provider=metrics.provider)
    rig.run([HIGH] * 3)
    assert rig.guard.level == Level.CRITICAL
    results = [a["result"] for a, v in metrics.points().get(RELEASES, []) if v]
    assert results and set(results) <= {"released", "nothing", "unavailable"}
    assert metrics.value(RELEASES) == 1


def test_malloc_trim_absent_is_harmless_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery, "malloc_trim", lambda: None)
    rig = critical_rig()
    released = release_memory(rig.guard.telemetry)
    assert released.trimmed is None and released.cpu_seconds >= 0
    assert rig.guard.telemetry.by_attribute[(RELEASES, "result", "unavailable")] == 2


@pytest.mark.skipif(recovery.malloc_trim() is None, reason="no glibc malloc_trim here")
def test_malloc_trim_found_on_glibc() -> None:
    assert release_memory().trimmed in (True, False)


# --- on_stuck: recycle ------------------------------------------------------------------------


def test_recycle_is_asked_once_instead_of_half_open(releases: list[int]) -> None:
    rig = critical_rig(on_stuck="recycle")
    asked: list[float] = []
    rig.guard.on_recycle(lambda p: asked.append(p.usage_ratio))
    rig.run([HIGH] * (2 * STALL + 10))
    assert asked == [HIGH]
    assert admits(rig) == 0.0 and rig.guard._recovery.phase is Phase.RECYCLING  # type: ignore[union-attr]
    assert rig.guard.telemetry.counts[RECYCLES] == 1


def test_recycle_with_nobody_to_recycle_goes_half_open(
    releases: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    rig = critical_rig(on_stuck="recycle")
    with caplog.at_level(logging.WARNING, logger="memcontract.guard"):
        rig.run([HIGH] * 2 * STALL)
    assert admits(rig) == FIRST_FRACTION
    assert any("nothing is registered with guard.on_recycle" in r.message for r in caplog.records)


def test_a_raising_recycle_callback_is_counted(releases: list[int]) -> None:
    rig = critical_rig(on_stuck="recycle")
    rig.guard.on_recycle(lambda p: 1 / 0)
    rig.run([HIGH] * 2 * STALL)
    assert rig.guard.telemetry.counts[RECYCLES] == 1
    assert rig.guard.telemetry.by_attribute[("memcontract.hook.errors", "hook", "on_recycle")] == 1


# --- one allocation report per level per episode ----------------------------------------------


@pytest.fixture
def allocations(rig: Rig) -> Iterator[SampleAllocations]:
    (action,) = [a for a in rig.guard.actions if isinstance(a, SampleAllocations)]
    yield action
    if action.worker is not None:
        action.worker.join(10)


def reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.message for r in caplog.records if "top allocation sites" in r.message]


def settle(action: SampleAllocations) -> None:
    if action.worker is not None:
        action.worker.join(30)
        assert not action.worker.is_alive()


KEEP: list[bytes] = []


def allocate_here(blocks: int) -> None:
    KEEP.extend(bytes(1000 + i % 7) for i in range(blocks))


def test_one_report_on_entering_2_and_one_on_entering_3(
    rig: Rig, allocations: SampleAllocations, caplog: pytest.LogCaptureFixture, releases: list[int]
) -> None:
    assert not tracemalloc.is_tracing()
    with caplog.at_level(logging.WARNING, logger="memcontract.guard"):
        rig.run([0.91, 0.91])  # level 2: a sampling window opens
        assert tracemalloc.is_tracing() and rig.guard.allocation_report() is None
        allocate_here(2000)
        rig.step(0.91)  # the next sample: one report, and the window closes
        settle(allocations)
        assert len(reports(caplog)) == 1 and not tracemalloc.is_tracing()
        for _ in range(6):  # level 2 holds: nothing more
            rig.step(0.91)
            settle(allocations)
        assert len(reports(caplog)) == 1
        first = rig.guard.allocation_report()
        assert first is not None and first.level == 2
        assert rig.run([0.97] * 3)[-1] == Level.CRITICAL  # level 3: another window
        assert tracemalloc.is_tracing()
        allocate_here(5000)
        rig.step(0.97)
        settle(allocations)
        for _ in range(6):
            rig.step(0.97)
            settle(allocations)
        rig.run([0.91] * 5)  # down to 2 and up to 3 again: the same episode, no report
        rig.run([0.97] * 5)
        settle(allocations)
    assert rig.guard.level == Level.CRITICAL
    assert not tracemalloc.is_tracing()  # tracing's own memory handed back
    logged = reports(caplog)
    assert len(logged) == 2 and "at level 2" in logged[0] and "at level 3" in logged[1]
    latest = rig.guard.allocation_report()
    assert latest is not None and latest.level == 3 and latest is not first
    top = latest.sites[0]
    assert top.location.startswith("tests/test_recovery.py:"), latest.format()
    assert top.size_bytes >= 5000 * 1000 and top.blocks >= 5000  # what the window allocated
    for site in latest.sites:
        assert site.size_bytes > 0
        assert "tracemalloc" not in site.location and "importlib" not in site.location
        assert "memcontract/" not in site.location and not site.location.startswith("/")
        assert "interceptors/" not in site.location
    assert " 0.0 " not in logged[1] and "+0 B" not in logged[1]
    KEEP.clear()


def test_a_program_that_traces_itself_keeps_tracing(
    rig: Rig, allocations: SampleAllocations
) -> None:
    tracemalloc.start()
    try:
        allocate_here(3000)  # before the level: not growth
        rig.run([0.91, 0.91])
        settle(allocations)  # the baseline
        allocate_here(1000)
        rig.step(0.91)
        settle(allocations)
        rig.run([0.5] * 10)
        assert tracemalloc.is_tracing()
        report = allocations.report
        assert report is not None
        assert 1000 <= report.sites[0].blocks < 3000, report.format()
    finally:
        tracemalloc.stop()
        KEEP.clear()


def test_a_new_episode_reports_again_and_recovery_stops_tracing(
    rig: Rig, allocations: SampleAllocations, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="memcontract.guard"):
        for _ in range(2):
            rig.run([0.91] * 3)
            settle(allocations)
            rig.run([0.5] * 10)  # back to 0: tracing stops
            assert not tracemalloc.is_tracing()
    assert len(reports(caplog)) == 2


def test_a_report_is_bounded_and_says_it_is_an_estimate() -> None:
    action = SampleAllocations(max_traces=100)
    rig = Rig(make_contract(), actions=[action])
    rig.run([0.91, 0.91])
    allocate_here(5000)
    rig.step(0.91)
    settle(action)
    report = action.report
    assert report is not None and report.examined <= 101 and report.traced >= 5000
    assert "estimated from" in report.format()
    KEEP.clear()


@pytest.mark.parametrize(
    ("size", "text"), [(1, "1 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 << 20, "5.0 MiB")]
)
def test_sizes_never_print_as_zero(size: int, text: str) -> None:
    assert format_bytes(size) == text


# --- over real loopback: the example server half-open, a plain and a memcontract caller -------


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_half_open_server_admits_its_fraction_and_a_failing_fast_caller_follows_it(
    releases: list[int], kind: str
) -> None:
    from .test_example_service import RE, get_stock, inventory_rig, order_rig, rpc_error, serve

    rig = inventory_rig()
    rig.run([HIGH] * (3 + 2 * STALL))
    assert admits(rig) == FIRST_FRACTION
    with serve(kind, rig) as s:
        with s.channel() as plain:  # every call reaches the server: 1 in 8 is admitted
            outcomes = []
            for _ in range(16):
                try:
                    outcomes.append(get_stock(plain, "sku-0001")[1]["x-memory-level"])
                except grpc.RpcError as err:
                    assert err.code() == RE
                    outcomes.append(err.code().name)
        assert outcomes == (["RESOURCE_EXHAUSTED"] * 7 + ["3"]) * 2  # admitted, level 3 told
        caller = order_rig(0.3)
        with s.channel(caller) as channel:
            shed = rpc_error(lambda: get_stock(channel, "sku-0001"))  # 1 in 8: this one is shed
            assert shed.code() == RE and "fail fast" not in (shed.details() or "")
            local = rpc_error(lambda: get_stock(channel, "sku-0001"))
            assert local.code() == RE and "fail fast" in (local.details() or "")
            rig.run([HIGH] * 3)  # flat: fully open
            assert admits(rig) == 1.0
            caller.clock.advance(1.001)  # the pushback (1000 ms) is over: the probe goes out
            told = [get_stock(channel, "sku-0001")[1]["x-memory-level"] for _ in range(4)]
            # Served at level 3: the caller sends its calls again (it used to fail all but one
            # per pushback window for as long as the callee stayed at level 3).
            assert told == ["3"] * 4
        assert caller.guard.telemetry.counts[FAST_FAILS] == 1
