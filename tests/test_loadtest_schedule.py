"""Schedules and the pacer: intended starts from an absolute schedule, tested without a clock."""

from __future__ import annotations

from typing import Any

import pytest

from memcontract.loadtest import LoadTestError, parse_duration, parse_schedule
from memcontract.loadtest.pacer import Pacer
from memcontract.loadtest.schedule import Schedule


@pytest.mark.parametrize(
    ("text", "seconds", "calls"),
    [
        ("const:50", 0.0, None),
        ("ramp:100->2000:30s", 30.0, 30 * (100 + 2000) / 2),
        ("ramp:0->100:10s", 10.0, 500.0),
        ("ramp:500->100:2s", 2.0, 600.0),
        ("step:100,500,1000:10s", 30.0, 16000.0),
        ("step:5:500ms", 0.5, 2.5),
    ],
)
def test_schedule_length_and_calls(text: str, seconds: float, calls: float | None) -> None:
    schedule = parse_schedule(text)
    assert schedule.seconds == pytest.approx(seconds)
    if calls is not None:
        assert schedule.count(seconds) == pytest.approx(calls)
    assert schedule.text == text


@pytest.mark.parametrize("text", ["const:7", "ramp:100->2000:30s", "ramp:0->40:3s", "step:3,9:2s"])
def test_time_of_inverts_count(text: str) -> None:
    schedule = parse_schedule(text)
    for n in range(0, 400, 7):
        t = schedule.time_of(n)
        assert schedule.count(t) == pytest.approx(n, abs=1e-6)
        assert t >= schedule.time_of(max(0, n - 1))


def test_ramp_rate_is_linear_then_held() -> None:
    schedule = parse_schedule("ramp:100->300:2s")
    assert [schedule.rate(t) for t in (0, 1, 1.999, 2, 50)] == pytest.approx(
        [100, 200, 299.9, 300, 300]
    )


@pytest.mark.parametrize(
    "text",
    [
        "ramp:100->:30s",
        "ramp:100:30s",
        "ramp:100->200",
        "ramp:-1->200:1s",
        "ramp:100->0:1s",
        "step:100,0:1s",
        "step:100,x:1s",
        "const:0",
        "const:-5",
        "const:abc",
        "step:10:0s",
        "step:10:fast",
        "wave:1->2:3s",
        "",
    ],
)
def test_bad_schedules_are_refused_by_name(text: str) -> None:
    with pytest.raises(LoadTestError, match="--schedule"):
        parse_schedule(text)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("500ms", 0.5), ("2m", 120), ("3", 3)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0s", "-1s", "1d", "soon", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(LoadTestError, match="duration"):
        parse_duration(text, what="duration")


def test_pacer_fires_on_the_absolute_schedule() -> None:
    pacer = Pacer(Schedule.constant(100), duration=1.0)
    # On time: wait until the next intended start.
    assert pacer.pace(0.0, 0) == (0.0, False)
    assert pacer.pace(0.001, 1) == pytest.approx((0.009, False))
    # Behind (a slow worker): fire at once, the intended starts do not move.
    assert pacer.pace(0.5, 10) == (0.0, False)
    assert pacer.intended(10) == pytest.approx(0.1)
    # Ahead: wait.
    assert pacer.pace(0.1, 50) == pytest.approx((0.4, False))
    # The duration ends the run: calls 0..99 only.
    assert pacer.pace(0.995, 99)[1] is False
    assert pacer.pace(0.995, 100) == (0.0, True)


def test_pacer_total_and_phase() -> None:
    pacer = Pacer(Schedule.constant(10), total=3, phase=0.5)
    assert [pacer.intended(n) for n in range(4)] == pytest.approx([0.05, 0.15, 0.25, None])
    with pytest.raises(ValueError, match="duration or a total"):
        Pacer(Schedule.constant(10))


@pytest.mark.parametrize(
    ("schedule", "bounds"),
    [
        (Schedule.constant(100), {"duration": 1.0}),
        (parse_schedule("ramp:10->200:3s"), {"duration": 3.0, "phase": 0.5}),
        (Schedule.constant(10), {"total": 7, "phase": 0.25}),
        (Schedule.constant(100), {"duration": 1.1}),  # count(1.1) is 110.00000000000001
        (Schedule.constant(3000), {"duration": 1.1, "phase": 0.5}),
    ],
)
def test_calls_before_counts_the_intended_starts(schedule: Schedule, bounds: Any) -> None:
    """What the runner drops at once while the in-flight bound holds: every call due so far."""
    pacer = Pacer(schedule, **bounds)
    starts = _starts(pacer)
    for t in (0.0, 0.013, 0.5, 0.999, 1.0, 1.1, 1.1005, 1.7, 2.5, 3.0, 99.0):
        assert pacer.calls_before(t) == sum(1 for s in starts if s < t), t


def test_workers_share_a_schedule_exactly() -> None:
    """W workers at 1/W of the rate with phases k/W fire what one worker fires."""
    schedule = parse_schedule("ramp:10->200:3s")
    one = Pacer(schedule, duration=3.0)
    starts_one = _starts(one)
    shared = sorted(
        t
        for k in range(3)
        for t in _starts(Pacer(schedule.scaled(1 / 3), duration=3.0, phase=k / 3))
    )
    assert len(shared) == pytest.approx(len(starts_one), abs=2)
    assert len(starts_one) == pytest.approx(schedule.count(3.0), abs=1)


def _starts(pacer: Pacer) -> list[float]:
    starts = []
    while (t := pacer.intended(len(starts))) is not None:
        starts.append(t)
    return starts


def test_default_workers_two_for_a_wide_closed_loop_one_otherwise() -> None:
    import os

    from memcontract.loadtest import LoadSpec

    def count(**kwargs: object) -> int:
        return LoadSpec("127.0.0.1:1", "/a.B/C", **kwargs).worker_count  # type: ignore[arg-type]

    two = min(2, os.cpu_count() or 1)
    assert count(concurrency=32) == two and count(concurrency=16) == two
    assert count(concurrency=15) == 1 and count(schedule=parse_schedule("const:5000")) == 1
    assert count(concurrency=32, workers=1) == 1 and count(concurrency=2, workers=3) == 3
    spec = LoadSpec("127.0.0.1:1", "/a.B/C", concurrency=32)
    assert spec.config()["workers"] == two and spec.config()["connections"] == two
