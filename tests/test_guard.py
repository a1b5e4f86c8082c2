"""Guard and breach ladder, stepped deterministically with FakeProbe and FakeClock."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import threading
import tracemalloc

import pytest

from memcontract import GuardStateError, Level, Pressure, wire
from memcontract.actions import Action
from memcontract.contract import OrcaOptions
from memcontract.instance import instance_id
from memcontract.telemetry import ACTIONS, HOOK_ERRORS, PROBE_FAILURES

from .support import Rig, make_contract, wait_until

# (name, ladder overrides, usages fed one per sample, expected level after each)
LADDER_CASES = [
    ("stays normal below level1", {}, [0.5, 0.79, 0.0], [0, 0, 0]),
    ("level1 needs one sample", {}, [0.80], [1]),
    ("level2 needs two in a row", {}, [0.91, 0.91], [1, 2]),
    ("level3 needs three in a row", {}, [0.96, 0.96, 0.96], [1, 2, 3]),
    ("a dip resets the level3 streak", {}, [0.96, 0.96, 0.5, 0.96, 0.96], [1, 2, 2, 2, 2]),
    ("confirm counts from the contract", {"confirm": (2, 3, 4)}, [0.96] * 4, [0, 1, 2, 3]),
    (
        "thresholds from the contract",
        {"heap": (0.5, 0.6, 0.7)},
        [0.55, 0.65, 0.75, 0.75, 0.75],
        [1, 1, 2, 2, 3],
    ),
    (
        "recovery: one level at a time after recover_after",
        {"recover_after": 2},
        [0.96, 0.96, 0.96, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
        [1, 2, 3, 3, 2, 2, 1, 1, 0],
    ),
    (
        "a sample above the current threshold restarts recovery",
        {"recover_after": 2},
        [0.91, 0.91, 0.1, 0.92, 0.1, 0.1],
        [1, 2, 2, 2, 2, 1],
    ),
    (
        "recovery stops at the level the signal still holds",
        {"recover_after": 1},
        [0.96, 0.96, 0.96, 0.85, 0.85, 0.85],
        [1, 2, 3, 2, 1, 1],
    ),
]


@pytest.mark.parametrize(
    ("name", "ladder", "usages", "levels"), LADDER_CASES, ids=[c[0] for c in LADDER_CASES]
)
def test_ladder_heap(
    name: str, ladder: dict[str, object], usages: list[float], levels: list[int]
) -> None:
    rig = Rig(make_contract(ladder=ladder))
    assert rig.run(usages) == levels


def test_alloc_rate_signal_and_multi_signal_max() -> None:
    rig = Rig(make_contract(alloc_rate_mb_per_sec=10))
    # heap says level 1, allocation rate (16 MiB/s = 1.6x) says level 2: the higher wins
    assert [rig.step(0.85, alloc_rate_mb=16) for _ in range(2)] == [1, 2]
    assert rig.guard.pressure.alloc_rate_ratio == pytest.approx(1.6)


def test_alloc_rate_estimated_from_used_bytes() -> None:
    rig = Rig(make_contract(alloc_rate_mb_per_sec=10, sample_interval_ms=1000), estimate_rate=True)
    levels = [rig.step(used_mb=used) for used in (10, 40, 70, 100)]  # +30 MiB/s every second
    p = rig.guard.pressure
    assert p.alloc_rate_bytes_per_sec == pytest.approx(30 * 1048576 * (1 - 0.5**3))
    # rate ratio 0, 1.5, 2.25, 2.63: level 3 needs a third sample at or above 2.0
    assert levels == [0, 1, 2, 2]


def test_probe_failure_holds_level_and_streaks(rig: Rig) -> None:
    assert rig.run([0.96, 0.96]) == [1, 2]
    assert rig.step(fail=True) == 2
    assert rig.guard.telemetry.counts[PROBE_FAILURES] == 1
    assert rig.step(0.96) == 3  # the failed read neither broke nor extended the streak
    assert rig.probe.reads == 4


def test_probe_failure_is_never_a_zero_reading(rig: Rig) -> None:
    rig.step(0.6)
    before = rig.guard.pressure
    rig.step(fail=True)
    assert rig.guard.pressure is before


def test_failed_sources_are_counted() -> None:
    from memcontract.probe import Reading

    class HalfBroken:
        def read(self, budget_bytes: int) -> Reading:
            return Reading(used_bytes=1, capacity_bytes=budget_bytes, failed_sources=("psi",))

        def close(self) -> None:
            pass

    from memcontract import Guard

    guard = Guard(make_contract(), probe=HalfBroken())
    guard.sample_once()
    guard.sample_once()
    assert guard.telemetry.by_attribute[(PROBE_FAILURES, "source", "psi")] == 2


def test_snapshot_is_pre_encoded(rig: Rig) -> None:
    rig.step(0.42)
    snap = rig.guard.snapshot
    # The ORCA rates as the default orca.rates (headroom) reports them.
    rps, eps = OrcaOptions().reported_rates(snap.rps, snap.eps, snap.pressure.usage_ratio)
    assert rps == pytest.approx(1 - 0.42)
    ours = wire.encode_trailers(snap.pressure, rps=rps, eps=eps, instance_id=instance_id())
    assert snap.trailing_metadata == ours
    assert snap.request_metadata == wire.encode(snap.pressure, instance_id())
    assert snap.shed_trailers[-1] == ("grpc-retry-pushback-ms", "1000")
    assert not snap.shedding


def test_shedding_flag_at_level3(rig: Rig) -> None:
    rig.run([0.97] * 3)
    assert rig.guard.snapshot.shedding
    assert "test-module" in rig.guard.snapshot.shed_details
    assert "level 3" in rig.guard.snapshot.shed_details


def test_gc_tightened_near_budget_and_restored(rig: Rig) -> None:
    original = gc.get_threshold()
    rig.step(0.76)  # gc_trigger_ratio 0.75, still level 0
    assert rig.guard.level == Level.NORMAL
    assert gc.get_threshold()[0] < original[0]
    rig.step(0.5)
    assert gc.get_threshold() == original


def test_level1_quiets_noncritical_loggers(rig: Rig) -> None:
    noisy = logging.getLogger("memcontract.test.noisy")
    noisy.setLevel(logging.DEBUG)
    rig.step(0.85)
    assert noisy.level == logging.WARNING
    rig.guard.stop()
    assert noisy.level == logging.DEBUG


def test_level2_samples_allocations_and_pauses_telemetry(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    assert not tracemalloc.is_tracing()
    rig.run([0.91, 0.91])
    assert tracemalloc.is_tracing()
    assert rig.guard.telemetry.paused
    with caplog.at_level(logging.WARNING, logger="memcontract.guard"):
        rig.step(0.91)
        for action in rig.guard.actions:  # the report is built on a worker thread
            worker = getattr(action, "worker", None)
            if worker is not None:
                worker.join(30)
    assert any("top allocation sites" in r.message for r in caplog.records)
    for _ in range(5):
        rig.step(0.5)
    assert rig.guard.level == Level.ALERT
    assert not tracemalloc.is_tracing()
    assert not rig.guard.telemetry.paused


class FakeCache:
    def __init__(self) -> None:
        self.shrunk = 0
        self.restored = 0

    def shrink(self) -> None:
        self.shrunk += 1

    def restore(self) -> None:
        self.restored += 1


def test_level3_collects_on_entry_and_shrinks_caches(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    collections: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(1) or 0)
    cache = FakeCache()
    rig.guard.register_cache(cache)
    rig.run([0.97] * 5)
    assert (len(collections), cache.shrunk, cache.restored) == (1, 1, 0)
    rig.step(0.97)  # three samples without falling: collected again (see test_recovery)
    assert len(collections) == 2
    rig.run([0.5] * 5)
    assert rig.guard.level == Level.DEGRADED
    assert (len(collections), cache.shrunk, cache.restored) == (2, 1, 1)


def test_dry_run_reports_but_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    collections: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(1) or 0)
    original = gc.get_threshold()
    rig = Rig(make_contract(dry_run=True))
    assert rig.run([0.97] * 3) == [1, 2, 3]
    snap = rig.guard.snapshot
    assert snap.pressure.level == Level.CRITICAL and not snap.shedding
    assert ("x-memory-level", "3") in snap.trailing_metadata
    assert gc.get_threshold() == original
    assert not tracemalloc.is_tracing()
    assert collections == []
    counts = rig.guard.telemetry.by_attribute
    assert counts[(ACTIONS, "action", "collect_garbage.engage")] == 1
    assert counts[(ACTIONS, "dry_run", "true")] >= 4


def test_transition_callbacks_and_failing_callback(rig: Rig) -> None:
    seen: list[tuple[int, int]] = []

    @rig.guard.on_transition
    def boom(old: Level, new: Level, p: Pressure) -> None:
        raise RuntimeError("user bug")

    rig.guard.on_transition(lambda old, new, p: seen.append((old, new)))
    rig.run([0.96, 0.96, 0.96, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert seen == [(0, 1), (1, 2), (2, 3), (3, 2)]
    assert rig.guard.telemetry.by_attribute[(HOOK_ERRORS, "hook", "on_transition")] == 4


def test_failing_action_is_counted_and_others_still_run() -> None:
    class Broken(Action):
        name = "broken"
        level = Level.ALERT

        def engage(self, pressure: Pressure) -> None:
            raise RuntimeError("action bug")

    class Recorder(Action):
        name = "recorder"
        level = Level.ALERT
        engaged = 0

        def engage(self, pressure: Pressure) -> None:
            self.engaged += 1

    recorder = Recorder()
    rig = Rig(make_contract(), actions=[Broken(), recorder])
    assert rig.step(0.85) == 1
    assert recorder.engaged == 1
    assert rig.guard.telemetry.by_attribute[(HOOK_ERRORS, "hook", "broken.engage")] == 1


def test_disable_default_action() -> None:
    rig = Rig(make_contract(), disable={"sample_allocations"})
    rig.run([0.91, 0.91])
    assert not tracemalloc.is_tracing()
    rig.guard.stop()


def test_thread_sampler_runs_and_stops() -> None:
    rig = Rig(make_contract(sample_interval_ms=10))
    rig.probe.set(usage=0.85)
    before = set(threading.enumerate())
    with rig.guard as guard:
        with pytest.raises(GuardStateError):
            guard.start()
        (sampler,) = (
            t for t in threading.enumerate() if t not in before and t.name == "memcontract-guard"
        )
        wait_until(lambda: rig.probe.reads >= 5, what="five samples")
        assert guard.running and guard.level == Level.ALERT
    assert not rig.guard.running
    # stop() joined the sampler: no read can come after it (no waiting to see none come).
    assert not sampler.is_alive()


def test_asyncio_sampler_runs_and_stops() -> None:
    rig = Rig(make_contract(sample_interval_ms=10))
    rig.probe.set(usage=0.91)

    async def main() -> None:
        async with rig.guard as guard:
            for _ in range(500):
                if guard.level == Level.DEGRADED:
                    break
                await asyncio.sleep(0.01)
            assert guard.level == Level.DEGRADED and guard.running
        assert not rig.guard.running

    asyncio.run(main())
    assert not tracemalloc.is_tracing()  # stop released the level-2 action


# Level 2 starts tracemalloc and the next sample stops it, while other threads allocate through
# the raw domain without the GIL (os.getcwd() does; so does a C thread calling into Python).
_TRACING_RACE = """
import os, sys, threading, time
from memcontract.actions import SampleAllocations
from memcontract.pressure import Level, Pressure

done = threading.Event()
def raw_allocations():
    while not done.is_set():
        os.getcwd()
for _ in range(4):
    threading.Thread(target=raw_allocations, daemon=True).start()
action, reports, end = SampleAllocations(), 0, time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    action.engage(Pressure(level=Level.DEGRADED))
    junk = [bytes(1000) for _ in range(100)]
    action.tick(Pressure(level=Level.DEGRADED))
    action.worker.join()
    action.release()
    reports += action.report is not None
done.set()
print(reports)
"""


def test_level2_windows_survive_threads_allocating_without_the_gil() -> None:
    # CPython before 3.12.9 and 3.13.2 segfaults when tracemalloc stops while such a thread
    # waits for the GIL in tracemalloc's raw hook (python/cpython#128679): the guard's own
    # allocation report crashed a test run this way. The guard traces without that hook.
    result = subprocess.run(
        [sys.executable, "-c", _TRACING_RACE, "3"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) > 10
