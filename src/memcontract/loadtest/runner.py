"""Running a load test in this process (grpc.aio): open loop from the pacer, or closed loop.

Open loop: a pacing loop fires each call at its intended start as its own task and never waits
for answers, so a slow target cannot slow the pace (calls over ``max_inflight`` are dropped and
counted, never queued). Latency counts from the intended start. Closed loop: ``concurrency``
callers, each sending its next call as soon as the previous one ends.

Calls are raw bytes through grpcio's generic multi-callables (no serializers, no generated
code). The target's ``x-memory-usage`` / ``x-memory-level`` are read from the trailers of every
call: a target that sends its keys only when they change says so on one call, and an absent
key means "unchanged", never level 0. Beside the load, a monitor task measures the harness
itself: how late its event loop wakes a timer, and how busy the loop's thread is each second.

>>> spec = LoadSpec("127.0.0.1:50051", "/pkg.Svc/Get", concurrency=4, duration=10)
>>> spec.mode, spec.share(1, 2).concurrency
('closed', 2)
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import grpc
import grpc.aio

from ..wire import LEVEL, USAGE, parse_level, parse_usage
from .errors import LoadTestError, TargetUnreachable
from .metrics import Metrics
from .pacer import Pacer
from .result import Event, Report, Second
from .schedule import Schedule

LOOP_TICK_S = 0.02  # how often the monitor asks the event loop to wake it
CLIENT_ERROR = "CLIENT_ERROR"  # the status of a call that failed in the client, not on the wire
log = logging.getLogger("memcontract.loadtest")
DEFAULT_DURATION_S = 10.0
#: From this many closed-loop callers, the default is two worker processes: with one, the
#: harness reached 0.74x ghz's throughput at 32 callers, with two 1.00x (docs/benchmarks.md).
AUTO_WORKERS_CONCURRENCY = 16
AUTO_WORKERS = 2

#: Called with each second as it closes (merged over workers), on the event loop's thread.
ProgressCallback = Callable[[Second], None]


@dataclass(frozen=True)
class Tls:
    """TLS material (PEM bytes): roots to trust (``None``: the system's), client cert and key."""

    cacert: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None


@dataclass(frozen=True)
class LoadSpec:
    """What to run: one method of one target, open loop (``schedule``) or closed (``concurrency``).

    ``duration`` (s) or ``total`` (calls) bounds the measured part (default: the schedule's
    length, else 10 s); ``warmup`` (s) runs first (the schedule's first seconds, or the same
    concurrency) and is not measured; the measured part then starts the schedule afresh.
    ``timeout`` (s) is each call's deadline. ``connections`` channels are spread over
    ``workers`` processes (at least one each); ``None`` picks (:attr:`worker_count`): one in
    open loop, and in closed loop from ``AUTO_WORKERS_CONCURRENCY`` callers up, two (or the
    CPUs, if fewer), since one Python process tops out near one core's worth of calls.
    ``tls`` ``None`` means plaintext.
    ``max_inflight`` bounds the calls in flight in open loop (split over workers): past it, due
    calls are dropped and counted. ``label`` names the stream in merged reports (default: the
    method's last part). Little's law sizes it: 1000 in flight carry 10 000 calls/s
    at 100 ms; an unbounded queue inside grpcio would only slow the client itself down.
    """

    target: str
    method: str
    payload: bytes = b""
    server_streaming: bool = False
    schedule: Schedule | None = None
    concurrency: int | None = None
    duration: float | None = None
    total: int | None = None
    warmup: float = 0.0
    metadata: tuple[tuple[str, str | bytes], ...] = ()
    timeout: float = 20.0
    connections: int = 1
    workers: int | None = None
    tls: Tls | None = None
    max_inflight: int = 1000
    connect_timeout: float = 5.0
    label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.payload, bytes):
            raise LoadTestError(f"payload: bytes expected, not {type(self.payload).__name__}")
        if (self.schedule is None) == (self.concurrency is None):
            raise LoadTestError("give --rps/--schedule (open loop) or --concurrency (closed loop)")
        for name in ("concurrency", "total", "connections", "workers", "max_inflight"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise LoadTestError(f"--{name.replace('_', '-')} {value}: must be >= 1")
        for name in ("duration", "timeout", "connect_timeout"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise LoadTestError(f"--{name.replace('_', '-')} {value}: must be > 0")
        if self.warmup < 0:
            raise LoadTestError(f"--warmup {self.warmup}: must be >= 0")

    @property
    def worker_count(self) -> int:
        """``workers``, or the default for this load when it is ``None`` (see above)."""
        if self.workers is not None:
            return self.workers
        if self.concurrency is not None and self.concurrency >= AUTO_WORKERS_CONCURRENCY:
            return max(1, min(AUTO_WORKERS, os.cpu_count() or 1, self.concurrency))
        return 1

    @property
    def mode(self) -> str:
        """``open`` (rate schedule) or ``closed`` (fixed concurrency)."""
        return "open" if self.schedule is not None else "closed"

    @property
    def run_seconds(self) -> float | None:
        """The measured part's length (s), or ``None`` when only ``total`` bounds it."""
        if self.duration is not None:
            return self.duration
        if self.total is not None:
            return None
        if self.schedule is not None and self.schedule.seconds > 0:
            return self.schedule.seconds
        return DEFAULT_DURATION_S

    def share(self, index: int, workers: int) -> LoadSpec:
        """Worker ``index``'s part of the load when ``workers`` processes share it."""

        def part(value: int | None) -> int | None:
            if value is None:
                return None
            return value // workers + (1 if index < value % workers else 0)

        return replace(
            self,
            schedule=self.schedule.scaled(1 / workers) if self.schedule else None,
            concurrency=part(self.concurrency),
            total=part(self.total),
            connections=max(1, part(self.connections) or 0),
            max_inflight=max(1, part(self.max_inflight) or 0),
            workers=1,
        )

    def config(self) -> dict[str, Any]:
        """What was asked, as the report's ``config`` (JSON-ready)."""
        return {
            "target": self.target,
            "method": self.method,
            "server_streaming": self.server_streaming,
            "mode": self.mode,
            "schedule": self.schedule.text if self.schedule else None,
            "concurrency": self.concurrency,
            "duration_s": self.run_seconds,
            "total": self.total,
            "warmup_s": self.warmup,
            "timeout_s": self.timeout,
            "connections": max(self.connections, self.worker_count),
            "workers": self.worker_count,
            "tls": self.tls is not None,
            "payload_bytes": len(self.payload),
            "metadata": sorted(k for k, _ in self.metadata),
            "label": self.label,
        }

    def phases(self, start: float) -> Iterator[Event]:
        """The schedule's boundaries inside the measured part (Unix s from ``start``)."""
        if self.schedule is None:
            return
        end = self.run_seconds or math.inf
        offset = 0.0
        segments = self.schedule.segments
        for before, after in itertools.pairwise(segments):
            offset += before.seconds
            if 0 < offset < end:
                text = (
                    f"{after.start_rps:g}/s"
                    if after.start_rps == after.end_rps
                    else (f"ramp {after.start_rps:g} -> {after.end_rps:g}/s")
                )
                yield Event(start + offset, "phase", f"step to {text}")
        offset = self.schedule.seconds
        if segments and 0 < offset < end:
            yield Event(
                start + offset, "phase", f"schedule ends, {self.schedule.hold_rps:g}/s held"
            )


def is_loopback(target: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` targets (where plaintext is the default).

    >>> is_loopback("127.0.0.1:50051"), is_loopback("[::1]:443"), is_loopback("example.com:443")
    (True, True, False)
    """
    host = target
    for prefix in ("dns:///", "ipv4:", "ipv6:"):
        host = host.removeprefix(prefix)
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_channel(spec: LoadSpec, index: int) -> grpc.aio.Channel:
    """A channel with its own connection (a local subchannel pool: channels do not share)."""
    options = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.channel_id", index),
        ("grpc.max_receive_message_length", -1),
        ("grpc.enable_retries", 0),
    ]
    if spec.tls is None:
        return grpc.aio.insecure_channel(spec.target, options=options)
    creds = grpc.ssl_channel_credentials(spec.tls.cacert, spec.tls.key, spec.tls.cert)
    return grpc.aio.secure_channel(spec.target, creds, options=options)


async def preflight(spec: LoadSpec) -> None:
    """Check the target answers the method: unreachable -> TargetUnreachable, unknown method
    (UNIMPLEMENTED) -> LoadTestError; any other outcome is the load test's business."""
    channel = open_channel(spec, -1)
    try:
        await connect([channel], spec)
        call = _multicallable(channel, spec)
        try:
            request = call(spec.payload, timeout=spec.timeout, metadata=spec.metadata or None)
            if spec.server_streaming:
                async for _ in request:
                    pass
            else:
                await request
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise LoadTestError(
                    f"--method {spec.method}: {spec.target} does not serve it "
                    f"(UNIMPLEMENTED: {err.details()})"
                ) from None
    finally:
        await channel.close()


async def connect(channels: list[grpc.aio.Channel], spec: LoadSpec) -> None:
    """Wait until every channel is connected; TargetUnreachable after ``connect_timeout``."""
    try:
        await asyncio.wait_for(
            asyncio.gather(*(c.channel_ready() for c in channels)), spec.connect_timeout
        )
    except TimeoutError:
        security = "TLS" if spec.tls else "plaintext"
        raise TargetUnreachable(
            f"cannot connect to {spec.target} ({security}) within {spec.connect_timeout:g} s"
        ) from None


def _multicallable(channel: grpc.aio.Channel, spec: LoadSpec) -> Any:
    if spec.server_streaming:
        return channel.unary_stream(spec.method)
    return channel.unary_unary(spec.method)


class _Worker:
    """One process's share of a run, on one event loop."""

    def __init__(
        self,
        spec: LoadSpec,
        phase: float,
        progress: ProgressCallback | None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.spec = spec
        self.stop = stop or asyncio.Event()
        self.phase = phase
        self.progress = progress
        self.channels = [open_channel(spec, i) for i in range(spec.connections)]
        self.calls = [_multicallable(c, spec) for c in self.channels]
        self.metadata = spec.metadata or None
        # Unix time from the monotonic clock: immune to wall-clock steps during the run.
        self.offset = time.time() - time.perf_counter()
        self.inflight = 0
        self.last_usage: Any = None  # the raw x-memory-usage / -level last read
        self.last_level: Any = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.reported = 0  # seconds handed to progress so far

    def now(self) -> float:
        return time.perf_counter() + self.offset

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def call(self, metrics: Metrics, index: int, intended: float) -> None:
        """One call: record its send, its end, and (sampled) the target's trailers."""
        spec = self.spec
        sent = self.now()
        metrics.on_sent(intended, sent)
        details = None
        trailers: Any = None
        try:
            call = self.calls[index](spec.payload, timeout=spec.timeout, metadata=self.metadata)
            if spec.server_streaming:
                async for _ in call:
                    pass
            else:
                await call
            code = "OK"
            done = self.now()
            trailers = await call.trailing_metadata()
        except grpc.aio.AioRpcError as err:
            done = self.now()
            code = err.code().name
            details = err.details() or ""
            trailers = err.trailing_metadata()
        except Exception as err:  # grpcio failing locally: counted, never the end of the run
            done = self.now()
            code, details = CLIENT_ERROR, f"{type(err).__name__}: {err}"
        metrics.on_done(code, intended, sent, done, details)
        if trailers:
            self.read_memory(metrics, done, trailers.get(USAGE), trailers.get(LEVEL))

    def read_memory(self, metrics: Metrics, done: float, usage: Any, level: Any) -> None:
        """The target's keys from one call's trailers (``None``: absent, so unchanged).

        Only a value unlike the last one read is parsed and recorded: the timeline carries a
        value over the seconds that read none, so the same text again adds nothing (and the hot
        path of a target that sends its keys on every call stays short).
        """
        if usage == self.last_usage:
            usage = None
        elif usage is not None:
            self.last_usage = usage
            ratio = parse_usage(usage)
            usage = None if ratio is None else ratio * 100
        if level == self.last_level:
            level = None
        elif level is not None:
            self.last_level = level
            parsed = parse_level(level)
            level = None if parsed is None else int(parsed)
        if usage is not None or level is not None:
            metrics.on_memory(done, usage, level)

    async def open_loop(self, metrics: Metrics, pacer: Pacer, start: float) -> None:
        """Fire calls at their intended starts until the pacer stops; never wait for answers."""
        hits = 0
        loop = asyncio.get_running_loop()
        conns = len(self.calls)
        limit = self.spec.max_inflight
        while True:
            wait, done = pacer.pace(self.now() - start, hits)
            if done or self.stop.is_set():
                return
            if wait > 0:
                await asyncio.sleep(wait)
            elif hits % 64 == 0:
                await asyncio.sleep(0)  # behind schedule: fire, but let answers in
            if self.inflight >= limit:
                hits = self._drop_due(metrics, pacer, start, hits)
                await asyncio.sleep(0)  # let answers in: only they free a place
                continue
            offset = pacer.intended(hits)
            assert offset is not None  # pace() said to go on
            self.inflight += 1  # counted now: a burst of tasks not yet started is in flight
            task = loop.create_task(self._tracked(metrics, hits % conns, start + offset))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            hits += 1

    def _drop_due(self, metrics: Metrics, pacer: Pacer, start: float, hits: int) -> int:
        """At the in-flight bound: drop call ``hits`` and every later one due by now, counted a
        second at a time; return the next call's number. (One loop turn per dropped call ran
        far past ``--duration`` at a rate far above what the target answers.)"""
        end = max(hits + 1, pacer.calls_before(self.now() - start))
        while hits < end:
            offset = pacer.intended(hits)
            assert offset is not None  # pace() said to go on, and end is within the bounds
            second = math.floor(offset)
            upto = max(hits + 1, min(end, pacer.calls_before(second + 1)))
            metrics.on_dropped(start + offset, upto - hits)
            hits = upto
        return hits

    async def _tracked(self, metrics: Metrics, index: int, intended: float) -> None:
        try:
            await self.call(metrics, index, intended)
        finally:
            self.inflight -= 1

    async def closed_loop(
        self, metrics: Metrics, concurrency: int, deadline: float, total: int | None
    ) -> None:
        """``concurrency`` callers, each calling again as soon as its call ends."""
        budget = [total if total is not None else -1]
        conns = len(self.calls)

        async def caller(index: int) -> None:
            now = self.now
            while budget[0] != 0 and now() < deadline and not self.stop.is_set():
                if budget[0] > 0:
                    budget[0] -= 1
                at = now()
                await self.call(metrics, index, at)

        await asyncio.gather(*(caller(i % conns) for i in range(concurrency)))

    async def run_phase(self, metrics: Metrics, seconds: float | None, total: int | None) -> None:
        """One phase (warm-up or measured) starting now; returns when its calls are sent."""
        spec = self.spec
        start = metrics.start_unix
        self.last_usage = self.last_level = None  # each phase's metrics read them afresh
        if spec.schedule is not None:
            pacer = Pacer(spec.schedule, duration=seconds, total=total, phase=self.phase)
            await self.open_loop(metrics, pacer, start)
        else:
            deadline = start + seconds if seconds is not None else math.inf
            await self.closed_loop(metrics, spec.concurrency or 1, deadline, total)

    async def monitor(self, metrics: Metrics) -> None:
        """Measure the harness itself until cancelled: how late the event loop wakes a timer
        (every ``LOOP_TICK_S``) and how busy its thread is (CPU per second, in %)."""
        wall, cpu = self.now(), time.thread_time()
        second = math.floor(wall - metrics.start_unix)
        while True:
            due = self.now() + LOOP_TICK_S
            await asyncio.sleep(LOOP_TICK_S)
            now = self.now()
            metrics.on_loop_lag(now, max(0.0, now - due))
            if math.floor(now - metrics.start_unix) != second:
                used = time.thread_time()
                metrics.on_cpu(now, min(100.0, 100 * (used - cpu) / max(1e-9, now - wall)))
                wall, cpu = now, used
                second = math.floor(now - metrics.start_unix)

    async def drain(self) -> None:
        """Wait for the open loop's calls still in flight (each bounded by its deadline)."""
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def ticker(self, metrics: Metrics) -> None:
        """Report each second to ``progress`` as it closes (it cannot change after)."""
        while True:
            next_close = metrics.start_unix + self.reported + 1
            await asyncio.sleep(max(0.0, next_close + 0.02 - self.now()))
            self.report_seconds(metrics, until=self.now())

    def report_seconds(self, metrics: Metrics, *, until: float) -> None:
        """Hand the seconds not yet reported that end by ``until`` (Unix s) to ``progress``."""
        assert self.progress is not None
        while metrics.start_unix + self.reported + 1 <= until:
            _guarded(self.progress, metrics.live_second(self.reported))
            self.reported += 1


def _guarded(callback: ProgressCallback, second: Second) -> None:
    """Run a user callback; its failure must not end the load test."""
    try:
        callback(second)
    except Exception:  # a broken progress display is not a failed run
        log.exception("loadtest progress callback failed")


async def run_worker(
    spec: LoadSpec,
    *,
    phase: float = 0.0,
    ready: Callable[[], Awaitable[float]] | None = None,
    progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
) -> Metrics:
    """Run ``spec`` (already this worker's share) in this event loop; return its measurements.

    Once connected, ``ready()`` (if given) returns the Unix time at which the warm-up (or the
    measured part) begins, so that several workers start together; default: at once.
    ``stop``, once set, ends the run early: no new calls; those in flight finish.
    """
    worker = _Worker(spec, phase, progress, stop)
    try:
        await connect(worker.channels, spec)  # before the clock starts
        start = worker.now() if ready is None else await ready()
        await asyncio.sleep(max(0.0, start - worker.now()))
        if spec.warmup > 0:
            await worker.run_phase(Metrics(start), spec.warmup, None)
        metrics = Metrics(start + spec.warmup, closed_loop=spec.mode == "closed")
        for event in spec.phases(metrics.start_unix):
            metrics.on_event(event)
        helpers = [asyncio.ensure_future(worker.monitor(metrics))]
        if progress:
            helpers.append(asyncio.ensure_future(worker.ticker(metrics)))
        try:
            await worker.run_phase(metrics, spec.run_seconds, spec.total)
            metrics.on_event(Event(worker.now(), "stop", "load stopped"))
            await worker.drain()
        finally:
            for helper in helpers:
                helper.cancel()
        if progress is not None:  # the rest, the last (partial) second included
            last = max(metrics.buckets, default=-1)
            worker.report_seconds(metrics, until=metrics.start_unix + last + 1)
        return metrics
    finally:
        await worker.close()


async def run_async(
    spec: LoadSpec,
    *,
    progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
) -> Report:
    """Run ``spec`` in the running event loop (``workers`` must be 1) and return its report.

    Several runs can share one loop (e.g. a ramp on one method and a steady stream on another).
    Setting ``stop`` ends the run early (calls in flight finish) with a report of what was
    measured. Raises TargetUnreachable or LoadTestError before any load is sent.
    """
    if spec.workers not in (None, 1):
        raise LoadTestError("run_async runs one worker; use run() for --workers > 1")
    spec = replace(spec, workers=1)
    await preflight(spec)
    metrics = await run_worker(spec, progress=progress, stop=stop)
    return metrics.freeze(spec.config())
