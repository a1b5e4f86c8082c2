"""Used and live memory (design §3, §4), stepped with FakeProbe and FakeClock: level 3 left on
live memory with a retained plateau (and what peers are told meanwhile), entered at once before
a hard limit, half-open shut while live memory is high, recycle only at the hard limit with live
memory low, implausible live memory ignored; and the live meter of this very process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest
from xds.data.orca.v3 import orca_load_report_pb2

from memcontract import Level, _live, wire
from memcontract.pressure import MIB
from memcontract.probe import SystemProbe
from memcontract.recovery import Phase, Released
from memcontract.telemetry import PROBE_FAILURES, RECYCLES

from .support import Rig, make_contract

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def releases(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count releases without a real gc.collect() per sample."""
    calls: list[int] = []

    def fake(telemetry: object = None) -> Released:
        calls.append(1)
        return Released(0, None, 0.0)

    monkeypatch.setattr("memcontract.guard.release_memory", fake)
    monkeypatch.setattr("memcontract.actions.release_memory", fake)
    return calls


def to_level3(rig: Rig, **probe_kw: object) -> None:
    for _ in range(3):
        rig.step(0.97, **probe_kw)
    assert rig.guard.level == Level.CRITICAL


def test_flat_used_and_low_live_leave_level3_and_peers_see_live() -> None:
    rig = Rig(make_contract())
    to_level3(rig, live=0.20)
    assert [rig.step(0.97, live=0.20) for _ in range(3)] == [3, 3, 0]
    p = rig.guard.pressure
    assert (p.usage_ratio, p.used_bytes, p.plateau_bytes) == (0.20, 97 * MIB, 97 * MIB)
    assert p.live_bytes == 20 * MIB and p.live_source == "fake"
    md = dict(rig.guard.snapshot.trailing_metadata)
    assert md[wire.USAGE] == "20%" and md[wire.LEVEL] == "0"
    sent = wire.parse_pressure_bin(md[wire.PRESSURE_BIN])
    assert sent is not None
    assert (sent.used_bytes, sent.plateau_bytes, sent.live_bytes) == (97 * MIB, 97 * MIB, 20 * MIB)
    orca = orca_load_report_pb2.OrcaLoadReport.FromString(md[wire.ORCA_BIN])  # type: ignore[arg-type]
    assert orca.application_utilization == pytest.approx(0.20)
    assert not rig.guard.snapshot.shedding


def test_live_memory_is_read_closely_while_a_plateau_is_recorded() -> None:
    """Peers are told the live usage while a plateau is recorded: the probe keeps reading live
    memory every sample (as at level 2) after level 3 is left, until the plateau is dropped."""
    rig = Rig(make_contract())
    watched: list[int] = []
    rig.probe.watch_live = watched.append  # type: ignore[attr-defined]  # a LiveWatch now
    to_level3(rig, live=0.20)
    assert [rig.step(0.97, live=0.20) for _ in range(3)] == [3, 3, 0]
    assert rig.step(0.50, live=0.20) == 0  # used fell by itself: the plateau is dropped
    assert watched == [1, 2, 3, 2, 0]


def test_used_climbing_past_the_plateau_is_level3_again_at_once() -> None:
    rig = Rig(make_contract())
    to_level3(rig, live=0.20)
    for _ in range(3):
        rig.step(0.97, live=0.20)
    assert rig.step(1.01, live=0.25) == 0  # within the 5 % tolerance
    assert rig.step(1.03, live=0.30) == 3  # the retained memory is used up
    assert rig.guard.pressure.plateau_bytes is None
    assert rig.guard.pressure.usage_ratio == 1.03  # used is the truth again
    assert rig.guard.snapshot.shedding


def test_live_exit_can_be_turned_off() -> None:
    rig = Rig(make_contract(), disable={"live_exit"})
    to_level3(rig, live=0.20)
    assert [rig.step(0.97, live=0.20) for _ in range(5)] == [3] * 5


def test_live_above_used_is_unknown_and_counted() -> None:
    rig = Rig(make_contract())
    to_level3(rig, live=0.99)  # more live than used: a source that counts what is not resident
    assert rig.guard.pressure.live_bytes is None
    assert rig.guard.telemetry.by_attribute[(PROBE_FAILURES, "source", "live")] == 3
    assert [rig.step(0.97, live=0.99) for _ in range(4)] == [3] * 4


def test_growth_towards_a_hard_limit_enters_level3_at_once() -> None:
    rig = Rig(make_contract(max_heap_mb=1024, alloc_rate_mb_per_sec=100), estimate_rate=True)
    levels = []
    for used in range(20, 100, 10):  # 20 MiB/s at 0.5 s samples in a 160 MiB cgroup
        rig.probe.set(used_mb=used, capacity_mb=160, limit_mb=160)
        rig.clock.advance(0.5)
        levels.append(int(rig.guard.sample_once().level))
    # margin = 20 MiB/s x (3 x 0.5 s + 2 s) = 70 MiB: level 3 once used reaches 90 MiB
    assert levels == [0] * 7 + [3]


def test_a_long_gap_between_samples_is_not_growth() -> None:
    rig = Rig(make_contract(), estimate_rate=True)
    rig.probe.set(used_mb=40)
    rig.guard.sample_once()
    rig.clock.advance(10.0)  # stopped (SIGSTOP) and continued
    rig.probe.set(used_mb=70)
    assert rig.guard.sample_once().alloc_rate_bytes_per_sec == 0.0
    rig.clock.advance(0.01)  # the next sample right after: too close to measure growth
    rig.probe.set(used_mb=75)
    p = rig.guard.sample_once()
    assert (p.alloc_rate_bytes_per_sec, p.level) == (0.0, Level.NORMAL)


def test_half_open_stays_shut_while_live_is_above_the_level3_threshold() -> None:
    rig = Rig(make_contract())
    to_level3(rig, live=0.96)
    for _ in range(12):
        rig.step(0.97, live=0.96)
        assert rig.guard.snapshot.admit == 0.0
    assert rig.guard.level == Level.CRITICAL


def test_half_open_opens_below_the_level3_threshold() -> None:
    rig = Rig(make_contract())
    to_level3(rig, live=0.85)  # above level 1: no exit, below level 3: half-open allowed
    for _ in range(6):
        rig.step(0.97, live=0.85)
    assert rig.guard.snapshot.admit > 0.0
    rig.step(0.97, live=0.96)  # the calls hold memory again: shut at once
    assert rig.guard.snapshot.admit == 0.0


def test_half_open_weighs_live_memory_with_the_calm_gap() -> None:
    # Calm and steady: used 30 %, live 10 %: a gap of 20 % the heap does not count (code,
    # stacks, the allocators' own). At level 3, live 85 % plus that gap is over the level-3
    # threshold: the calls hold the memory, and half-open stays shut (weighing the bare 85 %
    # opened it, and used memory climbed the gap past the threshold: a user's trial).
    rig = Rig(make_contract())
    for _ in range(3):
        rig.step(0.30, live=0.10)
    to_level3(rig, live=0.85)
    for _ in range(12):
        rig.step(0.97, live=0.85)
        assert rig.guard.snapshot.admit == 0.0
    assert rig.guard.level == Level.CRITICAL
    rig2 = Rig(make_contract())  # the same with a small gap: 85 % + 5 % is below it, opens
    for _ in range(3):
        rig2.step(0.30, live=0.25)
    to_level3(rig2, live=0.85)
    for _ in range(6):
        rig2.step(0.97, live=0.85)
    assert rig2.guard.snapshot.admit > 0.0


def recycle_rig(**fields: object) -> tuple[Rig, list[object]]:
    rig = Rig(make_contract(on_stuck="recycle", **fields))
    recycled: list[object] = []
    rig.guard.on_recycle(recycled.append)
    return rig, recycled


def test_recycle_fires_at_the_hard_limit_with_live_low() -> None:
    rig, recycled = recycle_rig()
    to_level3(rig, live=0.10)
    for _ in range(8):
        rig.step(0.99, live=0.10)  # at the budget (no cgroup): the live exit is barred
    assert len(recycled) == 1 and rig.guard.telemetry.counts[RECYCLES] == 1
    assert rig.guard._recovery.phase is Phase.RECYCLING  # type: ignore[union-attr]


def test_recycle_weighs_the_bare_live_memory_not_the_calm_gap() -> None:
    # A small budget where the process's calm gap is most of it (the example server in 64 MiB:
    # about 29 MiB of code and interpreter): live 45 % plus a 40 % gap is not below level 1,
    # yet the program holds little of what is used, and a restart gives the rest back.
    rig, recycled = recycle_rig()
    for _ in range(3):
        rig.step(0.50, live=0.10)
    to_level3(rig, live=0.45)
    for _ in range(8):
        rig.step(0.99, live=0.45)
    assert len(recycled) == 1


def test_recycle_does_not_fire_while_live_is_high() -> None:
    rig, recycled = recycle_rig()
    to_level3(rig, live=0.97)
    for _ in range(8):
        rig.step(0.99, live=0.97)
    assert recycled == [] and rig.guard.snapshot.admit == 0.0


def test_recycle_without_live_memory_fires_when_stuck_as_before() -> None:
    rig, recycled = recycle_rig()
    to_level3(rig)
    for _ in range(8):
        rig.step(0.97)
    assert len(recycled) == 1


# --- the live meter of this process ----------------------------------------------------------


def test_this_process_reads_live_memory_below_its_rss() -> None:
    with SystemProbe() as probe:
        reading = probe.read(1 << 40)
        assert probe.describe()["live_unknown"] is None
    assert reading.live_source == "pymalloc+mallinfo2"
    assert reading.live_bytes is not None and 0 < reading.live_bytes <= reading.used_bytes


def test_the_block_size_is_calibrated_from_pymalloc_stats() -> None:
    size = _live.bytes_per_block()
    assert size is not None and 16 <= size <= 512


def counted_meter(now: list[float]) -> tuple[_live.LiveMeter, list[int]]:
    """A meter on the clock ``now[0]`` whose glibc walks are counted (after its first)."""
    meter = _live.LiveMeter(clock=lambda: now[0])
    calls: list[int] = []
    real = meter._mallinfo2
    assert real is not None

    def counted() -> object:
        calls.append(1)
        return real()

    meter._mallinfo2 = counted  # type: ignore[assignment]
    return meter, calls


def read_finished(meter: _live.LiveMeter) -> int | None:
    """``meter.read()``, then the walk it may have started joined (what the next read sees)."""
    value = meter.read()
    assert meter.walker.done.wait(10)
    return value


def test_glibc_is_read_every_sample_only_when_watched_closely() -> None:
    now = [0.0]
    meter, calls = counted_meter(now)
    for _ in range(11):
        meter.last_cost = 0.0
        read_finished(meter)
        now[0] += 0.5
    assert len(calls) == 1  # below level 2: at most every 5 s (one walk at build, one at 5 s)
    meter.watch(True)
    for _ in range(5):
        meter.last_cost = 0.0  # a quick walk (a real one can take ms on a loaded machine)
        read_finished(meter)
        now[0] += 0.5
    assert len(calls) == 6  # level 2 and above: every sample
    meter.last_cost = 0.012  # a fragmented heap: 12 ms a read
    for _ in range(11):
        read_finished(meter)
        now[0] += 0.5
    assert len(calls) == 6  # at most every 500 x 12 ms = 6 s
    read_finished(meter)
    assert len(calls) == 7


def test_the_sampler_does_not_wait_for_a_slow_glibc_walk() -> None:
    """A walk that takes long (a fragmented heap) finishes on its own thread: the read returns
    the previous walk's bytes at once and the next read has the new ones."""
    now = [0.0]
    meter = _live.LiveMeter(clock=lambda: now[0])
    meter.watch(True)
    now[0] = 100.0  # the build's walk is long past
    real = meter._mallinfo2
    assert real is not None
    walking, release = threading.Event(), threading.Event()

    def slow() -> object:
        walking.set()
        release.wait(10)
        info = real()
        info.uordblks += 1 << 40  # a value no real walk gives
        return info

    meter._mallinfo2 = slow  # type: ignore[assignment]
    meter.last_cost = 0.012  # a fragmented heap: the walk goes to the walking thread
    before = meter.read()
    assert before is not None and before < 1 << 40  # the previous walk's bytes: no wait
    assert walking.wait(10)
    assert meter.read() == pytest.approx(before, abs=1 << 30)  # still walking: none started
    release.set()
    assert meter.walker.done.wait(10)
    after = meter.read()
    assert after is not None and after >= 1 << 40


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"PYTHONMALLOC": "malloc"}, "pymalloc is off"),
        ({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, "jemalloc is preloaded"),
    ],
)
def test_live_memory_is_unknown_where_the_numbers_would_lie(
    env: dict[str, str], reason: str
) -> None:
    code = "from memcontract import _live; print(_live.unknown_reason())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip().startswith(reason)


def test_calibrating_on_a_thread_survives_another_thread_writing_to_stderr(
    tmp_path: Path,
) -> None:
    """Calibration runs on the walking thread while others log: pymalloc's statistics are read
    through a memory stream of our own, so lines written to stderr (here a seekable file, as a
    service's log often is) neither mix into them nor move their offset. (Read through a
    redirected descriptor 2, a log line written meanwhile cut the statistics in two and made
    live memory unknown for good.)"""
    saved = os.dup(2)
    stop = threading.Event()
    sizes: list[float | None] = []

    def calibrate() -> None:
        while not stop.is_set() and len(sizes) < 300:
            sizes.append(_live.bytes_per_block())

    with open(tmp_path / "stderr.log", "wb") as log:
        os.dup2(log.fileno(), 2)
        try:
            worker = threading.Thread(target=calibrate)
            worker.start()
            while worker.is_alive():
                os.write(2, b"a service's log line\n")
            worker.join()
        finally:
            stop.set()
            os.dup2(saved, 2)
            os.close(saved)
    assert len(sizes) == 300 and all(s is not None and 16 <= s <= 512 for s in sizes)
    assert set((tmp_path / "stderr.log").read_text().splitlines()) == {"a service's log line"}


def test_a_forked_child_walks_glibc_on_a_thread_of_its_own() -> None:
    """The walking thread does not survive a fork: the child's meter starts its own."""
    now = [0.0]
    meter, calls = counted_meter(now)
    meter.watch(True)
    now[0] = 100.0
    meter.last_cost = 0.012  # slow walks: on the walking thread
    read_finished(meter)
    assert len(calls) == 1
    child = os.fork()
    if child == 0:  # the child reports through its exit code only
        now[0] = 200.0
        meter.last_cost = 0.012
        ok = read_finished(meter) is not None and len(calls) == 2
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_block_size_is_recalibrated_on_the_walking_thread() -> None:
    """The mix of object sizes drifts: the block size is measured again every CALIBRATE_EVERY
    seconds, off the sampler's path (the read after it uses it)."""
    now = [0.0]
    meter = _live.LiveMeter(clock=lambda: now[0])
    meter.bytes_per_block = 1.0  # what a stale calibration would say
    now[0] = _live.CALIBRATE_EVERY / 2
    read_finished(meter)
    assert meter.bytes_per_block == 1.0
    now[0] = _live.CALIBRATE_EVERY * 2  # a walk is due too, whatever the last one cost
    meter.last_cost = 0.0
    read_finished(meter)
    assert 16 <= meter.bytes_per_block <= 512


def test_a_calibration_while_tracemalloc_traces_keeps_the_block_size() -> None:
    """tracemalloc (the guard samples allocations with it from level 2) stands in front of
    pymalloc, and CPython prints no statistics then: live memory stays known, on the previous
    calibration. (Marked unknown, it could not end level 3 after such a spike.)"""
    meter = _live.LiveMeter()
    before = meter.bytes_per_block
    tracemalloc.start()
    try:
        assert _live.bytes_per_block() is None  # what CPython gives while tracing
        meter.calibrate()
    finally:
        tracemalloc.stop()
    assert meter.reason is None and meter.bytes_per_block == before
    assert meter.read() is not None


def test_half_open_stays_shut_at_a_cgroup_limit_while_live_is_not_low() -> None:
    """Below the level-3 threshold, half-open may open under a budget (exceeding it sheds); at
    a cgroup limit it may not while live memory is at or above the level-1 threshold: the calls
    hold the memory and past that limit the kernel kills (a user's drill: a service admitting
    12 % half-open at 95-99 % of its cgroup was OOM-killed)."""
    rig = Rig(make_contract(max_heap_mb=1024))
    at_limit = {"used_mb": 158, "capacity_mb": 160, "limit_mb": 160, "live": 0.85}
    to_level3(rig, **at_limit)
    for _ in range(12):
        rig.step(**at_limit)
        assert rig.guard.snapshot.admit == 0.0
    assert rig.guard.level == Level.CRITICAL


def test_half_open_stays_shut_while_live_reads_above_used() -> None:
    """A reading above used memory fails the plausibility check; where the platform has a live
    source that is a stale estimate (a spike's small objects under an old block size), not a
    platform without one: recovery takes the memory as held (a user's cgroup drill, with the
    reading dropped as unknown, admitted 12 % half-open at 90-99 % and was OOM-killed)."""
    rig = Rig(make_contract())
    to_level3(rig, live=0.99)
    for _ in range(12):
        rig.step(0.97, live=0.99)
        assert rig.guard.snapshot.admit == 0.0
    assert rig.guard.pressure.live_bytes is None and rig.guard.pressure.live_source == "fake"


def test_a_read_above_used_memory_asks_for_a_calibration() -> None:
    now = [0.0]
    meter = _live.LiveMeter(clock=lambda: now[0])
    meter.doubt()  # just calibrated at the build: not again yet
    assert not meter._calibrate_next
    now[0] = _live.DOUBT_EVERY
    meter.doubt()
    meter.bytes_per_block = 1.0
    meter.last_cost = 0.0
    read_finished(meter)
    assert 16 <= meter.bytes_per_block <= 512


def test_a_quick_walk_is_read_fresh_on_the_samplers_thread() -> None:
    """On a compact heap the walk costs microseconds: the sample that starts it reads it (a
    value one walk old, up to 5 s below level 2, skewed the calm gap taken from it)."""
    now = [0.0]
    meter = _live.LiveMeter(clock=lambda: now[0])
    real = meter._mallinfo2
    assert real is not None

    def grown() -> object:
        info = real()
        info.uordblks += 1 << 40  # a value no real walk gives
        return info

    meter._mallinfo2 = grown  # type: ignore[assignment]
    meter.last_cost = 0.0
    now[0] = _live.GLIBC_EVERY
    value = meter.read()
    assert value is not None and value >= 1 << 40
    assert meter.walker._thread is None  # no thread was needed
