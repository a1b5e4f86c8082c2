"""Test support: contracts built in code and a deterministic guard rig."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

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
