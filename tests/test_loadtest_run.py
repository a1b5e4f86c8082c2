"""The load harness against real loopback services: rates, exact worker merges, trailers.

The rate tests use ``tests/loadtest_server.py`` in its own process (its CPU does not starve
the harness's event loop of the GIL). Margins are wide: the machine is shared and loaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from memcontract.loadtest import (
    LoadSpec,
    LoadTestError,
    Report,
    Schedule,
    Second,
    parse_schedule,
    run,
    run_async,
)
from memcontract.loadtest.metrics import decode
from memcontract.loadtest.runner import CLIENT_ERROR, run_worker

from .grpc_support import Calls, serve
from .loadtest_server import serving
from .support import Rig, make_contract


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    with serving("tests.loadtest_server") as address:
        yield address


def _histogram_total(report_status_histogram: str) -> int:
    return int(decode(report_status_histogram).get_total_count())


def test_open_loop_sends_at_the_requested_rate(target: str) -> None:
    seconds: list[Second] = []
    report = run(
        LoadSpec(target, "/test.Load/Echo", schedule=Schedule.constant(100), duration=6),
        progress=seconds.append,
    )
    # The pacer owns the count; the clock, the rate.
    assert report.sent == report.answered == report.count("OK") == 600
    assert report.dropped == 0
    assert report.rate_sent == pytest.approx(100, rel=0.10)
    full = [s for s in report.timeline if 0 < s.second < 5]
    assert all(s.sent == pytest.approx(100, rel=0.10) for s in full), [s.sent for s in full]
    # Live progress saw every second of the run, in order.
    assert [s.second for s in seconds][:6] == [0, 1, 2, 3, 4, 5]
    assert sum(s.sent for s in seconds) == 600
    # The harness measured itself: every send's lag, its loop each second, its CPU.
    h = report.harness
    assert h.send_lag is not None and h.loop_lag is not None and h.cpu_peak_percent is not None
    assert decode(h.send_lag_histogram or "").get_total_count() == 600
    assert all(s.loop_lag_ms is not None for s in report.timeline[:6])
    assert [e.kind for e in report.events] == ["stop"]


def test_a_blocked_event_loop_is_reported_as_the_harness_falling_behind(target: str) -> None:
    """Something else hogs the harness's event loop (30 ms of every 40): its own lag p99 goes
    over 10 ms, the sends come late, and the report says latencies include its delay."""

    async def hogged() -> Report:
        done = asyncio.Event()

        async def hog() -> None:
            while not done.is_set():
                time.sleep(0.03)  # blocks the loop, as a starved or busy harness would be
                await asyncio.sleep(0.01)

        hogging = asyncio.ensure_future(hog())
        try:
            spec = LoadSpec(target, "/test.Load/Echo", schedule=Schedule.constant(100), duration=2)
            return await run_async(spec)
        finally:
            done.set()
            await hogging

    report = asyncio.run(hogged())
    h = report.harness
    assert h.behind and h.lag_p99_ms > 10, h
    assert h.loop_lag is not None and h.loop_lag.quantiles["p99"] > 10
    assert report.late > 0
    assert "latencies include the harness's delay" in h.warnings()[0]


def test_ramp_follows_the_schedule(target: str) -> None:
    report = run(LoadSpec(target, "/test.Load/Echo", schedule=parse_schedule("ramp:50->150:4s")))
    assert report.sent == 400  # the area under the ramp
    rates = [s.sent for s in report.timeline[:4]]
    assert rates == pytest.approx([62.5, 87.5, 112.5, 137.5], rel=0.15)


def test_closed_loop_keeps_the_requested_concurrency(target: str) -> None:
    """Little's law: answered rate x mean latency = calls in flight = the concurrency."""
    report = run(LoadSpec(target, "/test.Load/Sleep", payload=b"50", concurrency=4, duration=5))
    assert report.overall is not None
    assert report.sent == report.answered == report.count("OK") > 0
    in_flight = report.rate_answered * report.overall.mean / 1000
    assert in_flight == pytest.approx(4, rel=0.10)
    # Nobody is ever late in closed loop: every call starts when it is meant to.
    assert report.late == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_count_exactly_what_one_process_counts(target: str, workers: int) -> None:
    report = run(
        LoadSpec(
            target, "/test.Load/Echo", concurrency=4, total=500, workers=workers, connections=2
        )
    )
    assert report.sent == report.answered == report.count("OK") == 500
    (ok,) = report.statuses
    assert _histogram_total(ok.histogram) == _histogram_total(ok.service_histogram) == 500
    assert sum(s.answered for s in report.timeline) == 500
    assert report.config["workers"] == workers


def test_open_loop_workers_share_the_rate(target: str) -> None:
    report = run(
        LoadSpec(target, "/test.Load/Echo", schedule=Schedule.constant(120), duration=4, workers=2)
    )
    assert report.sent == report.answered == 480
    assert report.rate_sent == pytest.approx(120, rel=0.10)


def test_open_loop_never_waits_for_a_slow_target(target: str) -> None:
    """Calls over the in-flight bound are dropped and counted; the pace goes on regardless."""
    started = time.monotonic()
    spec = LoadSpec(
        target, "/test.Load/Sleep", payload=b"1500", schedule=Schedule.constant(50), duration=2,
        max_inflight=30,
    )  # fmt: skip
    report = run(spec)
    # 30 go out at once; the rest only as answers free a place (after 1.5 s): about 25 more.
    assert report.sent == report.answered == report.count("OK")
    assert 30 <= report.sent <= 65
    assert (
        report.sent + report.dropped == 100 == report.sent + sum(s.dropped for s in report.timeline)
    )
    assert report.statuses[0].latency.quantiles["p50"] >= 1500
    assert time.monotonic() - started < 15


def test_a_rate_far_over_the_bound_still_ends_on_time(target: str) -> None:
    """Calls due while the in-flight bound is reached are dropped a second at a time, not one
    loop turn each: at 20 M calls/s the run took about 40 s for its 1 s."""
    started = time.monotonic()
    spec = LoadSpec(
        target, "/test.Load/Sleep", payload=b"300", schedule=Schedule.constant(2e7), duration=1,
        max_inflight=20,
    )  # fmt: skip
    report = run(spec)
    assert time.monotonic() - started < 10
    assert report.sent == report.answered == report.count("OK") >= 20
    assert report.sent + report.dropped == 20_000_000
    assert report.dropped == sum(s.dropped for s in report.timeline)


def test_two_streams_share_one_event_loop(target: str) -> None:
    """What a demo does: a ramp on one method beside a steady stream on another."""

    async def both() -> list[Report]:
        ramp = LoadSpec(target, "/test.Load/Echo", schedule=parse_schedule("ramp:20->80:3s"))
        steady = LoadSpec(target, "/test.Load/Stream", server_streaming=True,
                          schedule=Schedule.constant(20), duration=3)  # fmt: skip
        return list(await asyncio.gather(run_async(ramp), run_async(steady)))

    ramp, steady = asyncio.run(both())
    assert ramp.count("OK") == 150 and steady.count("OK") == 60


def test_warmup_is_not_measured(target: str) -> None:
    spec = LoadSpec(target, "/test.Load/Echo", schedule=Schedule.constant(50), duration=2, warmup=1)
    report = run(spec)
    assert report.sent == report.answered == 100  # the warm-up's 50 calls are not counted
    assert report.timeline[0].second == 0 and len(report.timeline) <= 3


def test_metadata_is_sent(target: str) -> None:
    with_it = run(
        LoadSpec(target, "/test.Load/Meta", concurrency=2, total=20, metadata=(("x-test", "yes"),))
    )
    without = run(LoadSpec(target, "/test.Load/Meta", concurrency=2, total=20))
    assert with_it.count("OK") == 20
    assert without.count("INVALID_ARGUMENT") == 20


def test_server_streaming_method(target: str) -> None:
    report = run(
        LoadSpec(target, "/test.Load/Stream", server_streaming=True, concurrency=2, total=50)
    )
    assert report.count("OK") == 50


def test_deadline_and_error_statuses_are_counted_apart(target: str) -> None:
    report = run(
        LoadSpec(target, "/test.Load/Sleep", payload=b"400", concurrency=3, total=6, timeout=0.1)
    )
    assert report.count("DEADLINE_EXCEEDED") == 6
    assert {e.code for e in report.errors} == {"DEADLINE_EXCEEDED"}
    assert sum(e.count for e in report.errors) == 6


def test_a_call_failing_in_the_client_is_counted_not_fatal(target: str) -> None:
    with pytest.raises(LoadTestError, match="payload: bytes expected"):
        LoadSpec(target, "/test.Load/Echo", payload="text", concurrency=1)  # type: ignore[arg-type]
    spec = LoadSpec(target, "/test.Load/Echo", concurrency=1, total=3)
    object.__setattr__(spec, "payload", "text")  # grpcio raises TypeError in the client
    metrics = asyncio.run(run_worker(spec))
    assert metrics.answered == 3
    (error,) = metrics.freeze({}).errors
    assert error.code == CLIENT_ERROR and "TypeError" in error.details and error.count == 3


def test_memory_timeline_read_from_trailers() -> None:
    """A service whose FakeProbe is driven to level 3 mid-run: the timeline shows it."""
    rig = Rig(make_contract())
    rig.step(0.5)
    seen: list[Second] = []

    def progress(second: Second) -> None:
        seen.append(second)
        if second.second == 1:
            for _ in range(4):  # level 3 needs confirm.level3 = 3 samples over 0.95
                rig.step(0.97)

    with serve("aio", rig.guard, Calls()) as address:
        report = run(
            LoadSpec(
                address,
                "/test.Echo/UnaryUnary",
                payload=b"ok",
                schedule=Schedule.constant(40),
                duration=5,
            ),
            progress=progress,
        )
    assert rig.guard.level == 3
    first, last = report.timeline[0], report.timeline[-1]
    assert (first.level, first.usage_percent) == (0, pytest.approx(50.0))
    assert (last.level, last.usage_percent) == (3, pytest.approx(97.0))
    assert [s.level for s in report.timeline] == sorted(s.level or 0 for s in report.timeline)
    assert report.count("RESOURCE_EXHAUSTED") > 0 and report.count("OK") > 0
    assert last.codes.get("RESOURCE_EXHAUSTED", 0) == last.answered
