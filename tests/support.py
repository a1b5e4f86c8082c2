"""Test support: contracts built in code, a deterministic guard rig, and waiting without sleeps
(polling with a deadline, and counting what an aio client interceptor has read)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from memcontract import Contract, Guard
from memcontract.contract import LadderConfig, LevelCounts, LevelThresholds, ModuleContract
from memcontract.pressure import Level, Pressure
from memcontract.testing import FakeClock, FakeProbe


def make_contract(
    *, version: str = "v1.2", ladder: dict[str, Any] | None = None, **fields: Any
) -> Contract:
    """A one-module contract built without YAML (defaults: 100 MiB, 10 MiB/s)."""
    lad = LadderConfig()
    for key, value in (ladder or {}).items():
        if key in ("heap", "alloc_rate"):
            value = LevelThresholds(*value)
        elif key == "confirm":
            value = LevelCounts(*value)
        lad = dataclasses.replace(lad, **{key: value})
    base: dict[str, Any] = {"name": "test-module", "max_heap_mb": 100, "alloc_rate_mb_per_sec": 10}
    module = ModuleContract(**{**base, **fields, "ladder": lad})
    return Contract(version=version, modules=(module,), module=module)


class Rig:
    """A guard over a FakeProbe and FakeClock, stepped by hand (stopped after each test)."""

    live: ClassVar[list[Rig]] = []

    def __init__(self, contract: Contract, *, estimate_rate: bool = False, **guard_kw: Any) -> None:
        self.probe = FakeProbe(estimate_rate=estimate_rate)
        self.clock = FakeClock()
        self.guard = Guard(contract, probe=self.probe, clock=self.clock, **guard_kw)
        Rig.live.append(self)

    def step(self, usage: float | None = None, *, fail: bool = False, **probe_kw: Any) -> int:
        """Set the probe, advance the clock one interval, sample; return the level."""
        if fail:
            self.probe.fail()
        else:
            self.probe.set(usage=usage, **probe_kw)
        self.clock.advance(self.guard.module.sample_interval)
        return int(self.guard.sample_once().level)

    def run(self, usages: list[float]) -> list[int]:
        return [self.step(u) for u in usages]


def pressure_json(p: Pressure) -> dict[str, Any]:
    """A pressure as the Go binaries print it (memcontract.Pressure.MarshalJSON)."""
    return {
        "usage_ratio": p.usage_ratio,
        "used_bytes": p.used_bytes,
        "capacity_bytes": p.capacity_bytes,
        "alloc_rate_bytes_per_sec": p.alloc_rate_bytes_per_sec,
        "alloc_rate_ratio": p.alloc_rate_ratio,
        "level": int(p.level),
        "contract_version": p.contract_version,
        "module": p.module,
        "sampled_at_unix_ms": round(p.sampled_at * 1000),
        "live_bytes": p.live_bytes,
        "plateau_bytes": p.plateau_bytes,
        "live_source": p.live_source,
    }


def pressure_from_json(j: dict[str, Any]) -> Pressure:
    """A pressure from its JSON form (tests/vectors, the Go binaries' output)."""
    return Pressure(
        usage_ratio=float(j["usage_ratio"]),
        used_bytes=int(j["used_bytes"]),
        capacity_bytes=int(j["capacity_bytes"]),
        alloc_rate_bytes_per_sec=float(j["alloc_rate_bytes_per_sec"]),
        alloc_rate_ratio=float(j["alloc_rate_ratio"]),
        level=Level(int(j["level"])),
        contract_version=str(j["contract_version"]),
        module=str(j["module"]),
        sampled_at=int(j["sampled_at_unix_ms"]) / 1000,
        live_bytes=None if j.get("live_bytes") is None else int(j["live_bytes"]),
        plateau_bytes=None if j.get("plateau_bytes") is None else int(j["plateau_bytes"]),
        live_source=str(j.get("live_source", "")),
    )


def file_containing(channel: grpc.Channel, symbol: str) -> list[str] | grpc.StatusCode:
    """One ``file_containing_symbol`` request, as ghz sends it: the files' names, or the
    error's status code."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
    (response,) = stub.ServerReflectionInfo(iter([request]), timeout=10)
    if response.HasField("error_response"):
        code = response.error_response.error_code
        return next(c for c in grpc.StatusCode if c.value[0] == code)
    files = response.file_descriptor_response.file_descriptor_proto
    return [descriptor_pb2.FileDescriptorProto.FromString(f).name for f in files][:1]


def wait_until(condition: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what or condition}"
        time.sleep(0.005)


async def wait_until_async(
    condition: Callable[[], object], timeout: float = 5.0, what: str = ""
) -> None:
    """:func:`wait_until` for a coroutine: the event loop keeps running while it polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what or condition}"
        await asyncio.sleep(0.005)


class Recorded:
    """How many calls' trailers a list of aio client interceptors has read.

    A grpc.aio client interceptor reads the callee's trailers in the call's done callback,
    which grpc.aio runs after the awaited result is already back; a test that checks what was
    read first waits for it: ``await recorded.reach(n)`` after the n-th call.
    """

    def __init__(self, interceptors: Sequence[Any]) -> None:
        self.count = 0
        side = interceptors[0].side  # the four interceptors share one ClientSide
        read = side.record

        def record(trailers: Any, core: bool = False) -> None:
            try:
                read(trailers, core)
            finally:
                self.count += 1

        side.record = record

    async def reach(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` calls' trailers have been read."""
        await wait_until_async(lambda: self.count >= count, timeout, f"{count} calls read")


class Metrics:
    """What OpenTelemetry exports, read back through the SDK's ``InMemoryMetricReader``.

    Give ``provider`` to a guard (``Rig(contract, meter_provider=metrics.provider)``); then
    ``metrics.value("memcontract.shed")`` is the counter as an exporter sees it, by its
    published name: not the guard's own ``telemetry.counts``.
    """

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def points(self) -> dict[str, list[tuple[dict[str, Any], float]]]:
        """Every metric collected now: name -> [(attributes, value), ...]."""
        data = self.reader.get_metrics_data()
        out: dict[str, list[tuple[dict[str, Any], float]]] = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out[metric.name] = [
                        (dict(p.attributes or {}), p.value)  # type: ignore[union-attr]
                        for p in metric.data.data_points
                    ]
        return out

    def value(self, name: str, **attributes: str) -> float:
        """The sum of ``name``'s points whose attributes include ``attributes`` (0: none)."""
        return sum(
            value
            for attrs, value in self.points().get(name, [])
            if attributes.items() <= attrs.items()
        )
