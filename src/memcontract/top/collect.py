"""Reading targets: one watcher thread per target keeps its latest :class:`TargetState`."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import grpc

from memcontract import wire
from memcontract.pressure import Level, Pressure
from memcontract.v1 import memcontract_pb2 as pb
from memcontract.v1 import memcontract_pb2_grpc as pb_grpc

#: Seconds between health checks of a target without the pressure service, and between
#: reconnection attempts to an unreachable one.
POLL_S = 1.0
#: Deadline of one unary call, seconds.
CALL_TIMEOUT_S = 2.0

# A health check with the empty HealthCheckRequest (the server's overall health): its bytes
# are empty, so no stubs (and no grpcio-health-checking) are needed to send it.
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

_TARGET = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")


def parse_target(text: str) -> str:
    """``HOST:PORT`` (or ``[IPv6]:PORT``) checked; raises ``ValueError`` naming what is wrong."""
    match = _TARGET.fullmatch(text)
    if match is None:
        raise ValueError(f"target {text!r} is not HOST:PORT")
    if not 1 <= int(match.group(1)) <= 65535:
        raise ValueError(f"target {text!r}: port must be 1..65535")
    return text


@dataclass(frozen=True, slots=True)
class TargetState:
    """What is known about one target.

    Attributes:
        target: ``HOST:PORT``.
        pressure: its latest pressure, ``None`` before the first answer.
        source: ``"watch"`` (WatchPressure / GetPressure), ``"health"`` (health-check
            trailers) or ``""`` (nothing read yet).
        error: why the target is not answering now (``None`` while it answers).
        level_since: monotonic time its current level was first seen.
        level_seen_entering: whether the level change itself was seen (else the level was
            already in force when watching began: the time shown is a lower bound).
        allocations: its latest allocation report (``--allocations``, at level >= 2).
    """

    target: str
    pressure: Pressure | None = None
    source: str = ""
    error: str | None = None
    level_since: float | None = None
    level_seen_entering: bool = False
    allocations: pb.AllocationReport | None = None

    def with_pressure(self, pressure: Pressure, source: str, now: float | None) -> TargetState:
        """This state after reading ``pressure`` at monotonic time ``now`` (``None``: a single
        reading, which says nothing about how long the level has held)."""
        old = self.pressure
        if now is None:
            since, seen = None, False
        elif old is None or self.level_since is None:
            since, seen = now, False
        elif old.level != pressure.level:
            since, seen = now, True
        else:
            since, seen = self.level_since, self.level_seen_entering
        return replace(
            self,
            pressure=pressure,
            source=source,
            error=None,
            level_since=since,
            level_seen_entering=seen,
        )


def _describe(err: grpc.RpcError) -> str:
    code = err.code() if hasattr(err, "code") else None
    name = code.name if code is not None else "ERROR"
    return f"unreachable ({name})" if code == grpc.StatusCode.UNAVAILABLE else name


def _from_health(channel: grpc.Channel) -> Pressure | None:
    """The pressure in the trailers of one health check (``None``: no memcontract keys)."""
    check = channel.unary_unary(HEALTH_CHECK)
    _, call = check.with_call(b"", timeout=CALL_TIMEOUT_S)
    return wire.decode(call.trailing_metadata()).pressure


def _allocations(channel: grpc.Channel) -> pb.AllocationReport | None:
    stub = pb_grpc.MemoryPressureServiceStub(channel)
    response = stub.GetAllocationReport(pb.GetAllocationReportRequest(), timeout=CALL_TIMEOUT_S)
    return response.report if response.HasField("report") else None


def read_once(target: str, *, allocations: bool = False) -> TargetState:
    """One reading of ``target``: ``GetPressure``, else health-check trailers."""
    state = TargetState(target)
    with grpc.insecure_channel(target) as channel:
        try:
            try:
                stub = pb_grpc.MemoryPressureServiceStub(channel)
                reply = stub.GetPressure(pb.GetPressureRequest(), timeout=CALL_TIMEOUT_S)
                state = state.with_pressure(wire.from_proto(reply.pressure), "watch", None)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                pressure = _from_health(channel)
                if pressure is None:
                    return replace(state, error="no memcontract keys in health trailers")
                return state.with_pressure(pressure, "health", None)
            if allocations and state.pressure is not None and state.pressure.level >= 2:
                state = replace(state, allocations=_allocations(channel))
        except grpc.RpcError as err:
            return replace(state, error=_describe(err))
    return state


class Watcher:
    """Watches one target on a daemon thread; :attr:`state` is its latest reading.

    Args:
        target: ``HOST:PORT``.
        allocations: also fetch the allocation report while the target is at level >= 2.
        interval: seconds between updates asked of WatchPressure.
    """

    def __init__(self, target: str, *, allocations: bool = False, interval: float = 1.0) -> None:
        self.target = target
        self.allocations = allocations
        self.interval = interval
        self.state = TargetState(target)
        self._stop = threading.Event()
        self._call: Any = None
        self._thread = threading.Thread(target=self._run, name=f"top-{target}", daemon=True)

    def start(self) -> Watcher:
        """Start watching."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (cancels the stream in flight) and wait for the thread."""
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(CALL_TIMEOUT_S + POLL_S + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            with grpc.insecure_channel(self.target) as channel:
                try:
                    self._watch(channel)
                except grpc.RpcError as err:
                    if self._stop.is_set():
                        return
                    if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                        self._poll_health(channel)
                    else:
                        self.state = replace(self.state, error=_describe(err))
            self._stop.wait(POLL_S)

    def _watch(self, channel: grpc.Channel) -> None:
        stub = pb_grpc.MemoryPressureServiceStub(channel)
        request = pb.WatchPressureRequest(interval_ms=round(self.interval * 1000))
        self._call = stub.WatchPressure(request)
        if self._stop.is_set():
            self._call.cancel()
        for message in self._call:
            self._update(wire.from_proto(message.pressure), "watch", channel)

    def _poll_health(self, channel: grpc.Channel) -> None:
        while not self._stop.is_set():
            try:
                pressure = _from_health(channel)
            except grpc.RpcError as err:
                self.state = replace(self.state, error=_describe(err))
                return
            if pressure is None:
                self.state = replace(self.state, error="no memcontract keys in health trailers")
            else:
                self._update(pressure, "health", channel)
            self._stop.wait(POLL_S)

    def _update(self, pressure: Pressure, source: str, channel: grpc.Channel) -> None:
        state = self.state.with_pressure(pressure, source, time.monotonic())
        if self.allocations and source == "watch" and pressure.level >= Level.DEGRADED:
            # A failure here still keeps the pressure; the report comes with the next update.
            with contextlib.suppress(grpc.RpcError):
                state = replace(state, allocations=_allocations(channel))
        self.state = state
