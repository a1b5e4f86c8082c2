"""Cross-language tests: the Python interceptors and codec against the Go example binaries.

Real grpcio servers and channels on 127.0.0.1 talk to the Go ``order`` client and ``inventory``
server (``examples/go/cmd``), built once per session into a temporary directory; Go's wire
encoding (``vectorenc``, in the library module's ``go/internal/cmd``) and contract loader
(``contractdump``) are compared with Python's.
Without Go these tests skip; with ``MEMCONTRACT_REQUIRE_GO=1`` they fail instead.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import yaml
from google.protobuf import json_format
from grpc_health.v1 import health, health_pb2_grpc  # type: ignore[import-untyped]
from memcontract.interceptors import (
    aio_client_interceptors,
    aio_server_interceptor,
    client_interceptor,
    server_interceptor,
)

from memcontract import Contract, Level, Pressure, peer_pressure, wire
from memcontract.contract import OrcaOptions
from memcontract.instance import instance_id
from memcontract.pressure import MIB
from memcontract.telemetry import FAST_FAILS, SHEDS
from memcontract.v1 import memcontract_pb2

from .go_support import GO_CONTRACT, REPO, GoServer, build, run_lines
from .support import Recorded, Rig, make_contract, pressure_from_json, pressure_json

sys.path.insert(0, str(REPO / "examples" / "go" / "gen" / "python"))
from inventory.v1 import inventory_pb2, inventory_pb2_grpc  # type: ignore[import-not-found]

# The session build may take a while on a cold Go cache; every wait below is bounded anyway.
pytestmark = pytest.mark.timeout(600)

SERVICE = "/inventory.v1.InventoryService/"
PING = SERVICE + "Ping"
HEALTH = "/grpc.health.v1.Health/*"
VECTORS = REPO / "tests" / "vectors"
CONTRACTS = sorted(
    [
        *(REPO / "examples" / "contracts").glob("*.yaml"),
        *(REPO / "examples" / "go" / "contracts").glob("*.yaml"),
        REPO / "tests" / "contracts" / "full.yaml",
        REPO / "tests" / "contracts" / "multi.yaml",
    ]
)
GO_METHODS = {"get": "GetItem", "list": "ListItems", "reserve": "Reserve", "ping": "Ping"}
SHED_PUSHBACK_MS = 750


@pytest.fixture(scope="session")
def go_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go binaries, built once per session (skip without Go; fail under REQUIRE_GO)."""
    return build(tmp_path_factory.mktemp("gobin"))


def unstamped(p: Pressure | None) -> Pressure | None:
    """``p`` without its sample time, which Go's forced pressure stamps per call (``now``)."""
    if p is None:
        return None
    assert abs(p.sampled_at - time.time()) < 600, p  # stamped now, travelled in ms
    return dataclasses.replace(p, sampled_at=0.0)


def wire_text(metadata: wire.Metadata) -> list[list[str]]:
    """Metadata as the vectors and the Go binaries spell it: -bin values in base64."""
    return [[k, base64.b64encode(v).decode() if isinstance(v, bytes) else v] for k, v in metadata]


# --- a Python InventoryService ----------------------------------------------------------------


class Seen:
    """The caller pressure each Python handler read through ``memcontract.peer_pressure()``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, Pressure | None]] = []

    def caller(self, method: str) -> inventory_pb2.CallerPressure:
        p = peer_pressure()
        with self.lock:
            self.calls.append((method, p))
        if p is None:
            return inventory_pb2.CallerPressure(present=False)
        return inventory_pb2.CallerPressure(
            present=True, usage_ratio=p.usage_ratio, level=int(p.level), module=p.module
        )


class SyncInventory(inventory_pb2_grpc.InventoryServiceServicer):  # type: ignore[misc]
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def GetItem(self, request: Any, context: Any) -> Any:
        caller = self.seen.caller("GetItem")
        item = inventory_pb2.Item(sku=request.sku, quantity=len(request.sku))
        return inventory_pb2.GetItemResponse(item=item, caller=caller)

    def ListItems(self, request: Any, context: Any) -> Iterator[Any]:
        caller = self.seen.caller("ListItems")
        for i in range(request.count):
            item = inventory_pb2.Item(sku=f"sku-{i}", quantity=i)
            yield inventory_pb2.ListItemsResponse(item=item, caller=caller)

    def Reserve(self, request_iterator: Iterator[Any], context: Any) -> Any:
        caller = self.seen.caller("Reserve")
        total = sum(r.quantity for r in request_iterator)
        return inventory_pb2.ReserveResponse(reserved=total, caller=caller)

    def Ping(self, request: Any, context: Any) -> Any:
        return inventory_pb2.PingResponse(caller=self.seen.caller("Ping"))


class AioInventory(inventory_pb2_grpc.InventoryServiceServicer):  # type: ignore[misc]
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def GetItem(self, request: Any, context: Any) -> Any:
        caller = self.seen.caller("GetItem")
        item = inventory_pb2.Item(sku=request.sku, quantity=len(request.sku))
        return inventory_pb2.GetItemResponse(item=item, caller=caller)

    async def ListItems(self, request: Any, context: Any) -> AsyncIterator[Any]:
        caller = self.seen.caller("ListItems")
        for i in range(request.count):
            item = inventory_pb2.Item(sku=f"sku-{i}", quantity=i)
            yield inventory_pb2.ListItemsResponse(item=item, caller=caller)

    async def Reserve(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        caller = self.seen.caller("Reserve")
        total = 0
        async for r in request_iterator:
            total += r.quantity
        return inventory_pb2.ReserveResponse(reserved=total, caller=caller)

    async def Ping(self, request: Any, context: Any) -> Any:
        return inventory_pb2.PingResponse(caller=self.seen.caller("Ping"))


class PythonInventory:
    """``InventoryService`` (and health) served by grpcio, sync or aio, with the memcontract
    server interceptor, on 127.0.0.1; ``with`` gives the address and stops it on exit."""

    def __init__(self, kind: str, rig: Rig) -> None:
        self.kind, self.rig, self.seen = kind, rig, Seen()
        self.server: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> str:
        if self.kind == "sync":
            self.server = grpc.server(
                futures.ThreadPoolExecutor(8), interceptors=[server_interceptor(self.rig.guard)]
            )
            inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
                SyncInventory(self.seen), self.server
            )
            health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), self.server)
            port = self.server.add_insecure_port("127.0.0.1:0")
            self.server.start()
            return f"127.0.0.1:{port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        try:
            return asyncio.run_coroutine_threadsafe(self._start_aio(), self.loop).result(10)
        except BaseException:
            self.__exit__()
            raise

    async def _start_aio(self) -> str:
        self.server = grpc.aio.server(interceptors=[aio_server_interceptor(self.rig.guard)])
        inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
            AioInventory(self.seen), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return f"127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        if self.loop is None:
            if self.server is not None:
                self.server.stop(0).wait(10)
            return
        try:
            if self.server is not None:
                asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            assert self.thread is not None
            self.thread.join(10)
            self.loop.close()


def server_rig(usage: float, *, levels: int = 1, dry_run: bool = False) -> Rig:
    """The Python server's guard: module ``inventory`` of a v1.2 contract, 1024 MiB, Ping core."""
    contract = make_contract(
        name="inventory",
        max_heap_mb=1024,
        core_methods=(HEALTH, PING),
        retry_pushback_ms=SHED_PUSHBACK_MS,
        dry_run=dry_run,
    )
    rig = Rig(contract)
    for _ in range(levels):
        rig.step(usage, alloc_rate_mb=2.5)  # 0.25 of the contract's 10 MiB/s
    return rig


def run_order(go_bin: Path, address: str, method: str, *extra: str) -> list[dict[str, Any]]:
    """Run the Go ``order`` client (module ``order`` of the Go contract, forced to 91 %,
    level 2) against ``address``; its JSON lines."""
    argv = [str(go_bin / "order"), "-target", address, "-method", method, "-timeout", "5s"]
    argv += ["-contract", str(GO_CONTRACT), "-module", "order"]
    argv += ["-force-usage", "0.91", "-force-level", "2", *extra]
    lines = run_lines(argv, timeout=60)
    assert lines and lines[-1]["event"] == "done", lines
    return lines


# The pressure the Go order client sends (cli.Forced over module "order": 512 MiB).
GO_ORDER_PRESSURE = Pressure(
    usage_ratio=0.91,
    used_bytes=int(0.91 * float(512 * MIB)),
    capacity_bytes=512 * MIB,
    level=Level.DEGRADED,
    contract_version="v1.2",
    module="order",
)


def python_trailers(p: Pressure, *extra: tuple[str, str]) -> dict[str, str]:
    """What the Go client must print as the Python server's trailers for pressure ``p``."""
    # The default orca.rates (headroom), with no calls counted yet when the rig sampled.
    rps, eps = OrcaOptions().reported_rates(0.0, 0.0, p.usage_ratio)
    ours = wire.encode_trailers(p, rps=rps, eps=eps, instance_id=instance_id())
    trailers = {k: v for k, v in wire_text(ours)}
    trailers.update(extra)
    return trailers


# --- 1. Go client -> Python server ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "aio"])
@pytest.mark.parametrize("method", ["get", "list", "reserve", "ping"])
def test_go_client_reads_python_server_trailers(go_bin: Path, kind: str, method: str) -> None:
    rig = server_rig(0.8567)
    own = rig.guard.pressure
    assert own.level == Level.ALERT and own.alloc_rate_ratio == 0.25
    with PythonInventory(kind, rig) as address:
        lines = run_order(go_bin, address, method, "-n", "2", "-count", "3")
    calls = [line for line in lines if line["event"] == "call"]
    assert [c["code"] for c in calls] == ["OK", "OK"], calls
    for call in calls:
        assert call["method"] == SERVICE + GO_METHODS[method]
        # the x-memory-* keys and the ORCA bytes, exactly as Python encodes them
        assert call["trailers"] == python_trailers(own)
        assert call["trailers"]["x-memory-usage"] == "85.7%"
        assert call["trailers"]["x-memory-level"] == "1"
        assert call["trailers"]["x-memory-capacity"] == "1024"
        assert call["trailers"]["x-memory-contract"] == "v1.2"
        # Go's decoding of them (the -bin wins) is the Python guard's pressure, field by field
        assert call["peer_present"] is True and call["invalid"] == 0
        assert call["peer"] == {**pressure_json(own), "instance_id": instance_id()}
        # ORCA parsed with the cncf/xds Go type
        assert call["orca"] == {
            "mem_utilization": own.usage_ratio,
            "cpu_utilization": 0,
            "named_metrics": {"memcontract.level": 1, "memcontract.alloc_rate_ratio": 0.25},
        }
        assert call["retry_pushback_ms"] is None
        # the Python handler saw the Go caller's pressure and said so in the response
        assert call["caller_seen"] == {
            "present": True,
            "usage_ratio": 0.91,
            "level": 2,
            "module": "order",
            "invalid": 0,
        }
    assert lines[-1]["codes"] == {"OK": 2}


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_python_handler_sees_go_caller_pressure(go_bin: Path, kind: str) -> None:
    rig = server_rig(0.5)
    server = PythonInventory(kind, rig)
    with server as address:
        run_order(go_bin, address, "get")
        run_order(go_bin, address, "reserve", "-count", "2")
    seen = [(method, unstamped(p)) for method, p in server.seen.calls]
    assert seen == [("GetItem", GO_ORDER_PRESSURE), ("Reserve", GO_ORDER_PRESSURE)]


# --- 3. Python server at level 3 -> Go client --------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_python_level3_sheds_go_client_with_pushback(go_bin: Path, kind: str) -> None:
    rig = server_rig(0.97, levels=3)
    own = rig.guard.pressure
    assert own.level == Level.CRITICAL
    server = PythonInventory(kind, rig)
    with server as address:
        shed = {m: run_order(go_bin, address, m, "-count", "2") for m in ("get", "list", "reserve")}
        ping = run_order(go_bin, address, "ping")
        health_check = run_order(go_bin, address, "health")
    pushback = ("grpc-retry-pushback-ms", str(SHED_PUSHBACK_MS))
    for method, lines in shed.items():
        call = lines[0]
        assert call["code"] == "RESOURCE_EXHAUSTED", (method, call)
        assert "inventory" in call["message"] and "level 3" in call["message"]
        assert call["retry_pushback_ms"] == SHED_PUSHBACK_MS
        assert call["trailers"] == python_trailers(own, pushback)
        assert call["peer"] == {**pressure_json(own), "instance_id": instance_id()}
        assert call["orca"]["named_metrics"]["memcontract.level"] == 3
        assert call["orca"]["mem_utilization"] == own.usage_ratio
        assert call["messages"] == 0 and call["caller_seen"] is None
    # core methods are not shed, and still carry the level-3 trailers
    for lines in (ping, health_check):
        call = lines[0]
        assert call["code"] == "OK", call
        assert call["trailers"] == python_trailers(own)
        assert call["retry_pushback_ms"] is None
    assert ping[0]["caller_seen"]["module"] == "order"
    # no non-core handler ran
    assert [(method, unstamped(p)) for method, p in server.seen.calls] == [
        ("Ping", GO_ORDER_PRESSURE)
    ]
    assert rig.guard.telemetry.counts[SHEDS] == 3


def test_go_client_fails_fast_on_python_pushback(go_bin: Path) -> None:
    rig = server_rig(0.97, levels=3)
    server = PythonInventory("sync", rig)
    with server as address:
        lines = run_order(go_bin, address, "get", "-n", "3", "-fast-fail")
    calls, done = lines[:-1], lines[-1]
    assert [c["code"] for c in calls] == ["RESOURCE_EXHAUSTED"] * 3
    assert calls[0]["retry_pushback_ms"] == SHED_PUSHBACK_MS  # the server's shed
    assert done["fast_failed"] == 2  # the next two never left the Go process (750 ms window)
    assert rig.guard.telemetry.counts[SHEDS] == 1
    assert server.seen.calls == []


def test_go_client_keeps_calling_a_python_server_that_admits_at_level3(go_bin: Path) -> None:
    # A server at level 3 that serves non-core calls (half-open, here dry run) answers them at
    # level 3 without a pushback: the Go client does not fail them fast (it used to, after the
    # first answer, so half-open got one probe per window).
    rig = server_rig(0.97, levels=3, dry_run=True)
    server = PythonInventory("sync", rig)
    with server as address:
        lines = run_order(go_bin, address, "get", "-n", "3", "-fast-fail")
    calls, done = lines[:-1], lines[-1]
    assert [(c["code"], c["trailers"].get("x-memory-level")) for c in calls] == [("OK", "3")] * 3
    assert done["fast_failed"] == 0
    assert len(server.seen.calls) == 3


# --- 2. Python client -> Go server ------------------------------------------------------------


def client_rig() -> Rig:
    """A caller at level 1: every call carries its keys (a quiet one sends them once per change,
    see test_calm_python_client_tells_a_go_server_once)."""
    rig = Rig(make_contract(name="order", version="c-7", core_methods=(PING,)))
    rig.step(0.86, alloc_rate_mb=1.5)
    assert rig.guard.level == Level.ALERT
    return rig


def inventory_argv(go_bin: Path, usage: float, *extra: str) -> list[str]:
    argv = [str(go_bin / "inventory"), "-listen", "127.0.0.1:0", "-contract", str(GO_CONTRACT)]
    return [*argv, "-module", "inventory", "-force-usage", str(usage), *extra]


def reserve_requests() -> Iterator[Any]:
    yield inventory_pb2.ReserveRequest(sku="abc", quantity=2)
    yield inventory_pb2.ReserveRequest(sku="abc", quantity=3)


def sync_calls(target: str, rig: Rig) -> dict[str, Any]:
    """One call of each method through ``client_interceptor``; the ``caller`` of each reply."""
    channel = grpc.intercept_channel(
        grpc.insecure_channel(target), client_interceptor(rig.guard, target)
    )
    try:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        got = {"GetItem": stub.GetItem(inventory_pb2.GetItemRequest(sku="abc"), timeout=5).caller}
        items = list(stub.ListItems(inventory_pb2.ListItemsRequest(count=3), timeout=5))
        assert len(items) == 3
        got["ListItems"] = items[-1].caller
        reply = stub.Reserve(reserve_requests(), timeout=5)
        assert reply.reserved == 5
        got["Reserve"] = reply.caller
        got["Ping"] = stub.Ping(inventory_pb2.PingRequest(), timeout=5).caller
        return got
    finally:
        channel.close()


async def aio_calls(target: str, rig: Rig) -> dict[str, Any]:
    """The grpc.aio twin of :func:`sync_calls`."""
    interceptors = aio_client_interceptors(rig.guard, target)
    recorded = Recorded(interceptors)
    async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        got = {
            "GetItem": (await stub.GetItem(inventory_pb2.GetItemRequest(sku="a"), timeout=5)).caller
        }
        items = [
            r async for r in stub.ListItems(inventory_pb2.ListItemsRequest(count=3), timeout=5)
        ]
        assert len(items) == 3
        got["ListItems"] = items[-1].caller
        reply = await stub.Reserve(reserve_requests(), timeout=5)
        assert reply.reserved == 5
        got["Reserve"] = reply.caller
        got["Ping"] = (await stub.Ping(inventory_pb2.PingRequest(), timeout=5)).caller
        await recorded.reach(4)  # every call's done callback has read its trailers
        return got


def wait_for_peer(rig: Rig, target: str, timeout: float = 5.0) -> Pressure | None:
    deadline = time.monotonic() + timeout
    while (p := rig.guard.peers.get(target)) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return p


@pytest.mark.parametrize("client", ["sync", "aio"])
def test_python_client_and_go_server_see_each_other(go_bin: Path, client: str) -> None:
    rig = client_rig()
    mine = rig.guard.pressure
    argv = inventory_argv(go_bin, 0.91, "-force-alloc-rate-ratio", "0.3")
    with GoServer(argv) as server:
        target = server.address
        if client == "sync":
            replies = sync_calls(target, rig)
        else:
            replies = asyncio.run(asyncio.wait_for(aio_calls(target, rig), 30))
        lines = server.wait_events("call", 4)
        reported = wait_for_peer(rig, target)
    assert [line["method"] for line in lines] == [SERVICE + m for m in replies]
    go_own = lines[-1]["own"]  # what the last trailers carried
    assert (go_own["usage_ratio"], go_own["level"], go_own["module"]) == (0.91, 2, "inventory")
    assert go_own["capacity_bytes"] == 1024 * MIB and go_own["contract_version"] == "v1.2"
    assert go_own["alloc_rate_ratio"] == 0.3
    for line in lines:
        assert line["code"] == "OK" and line["shed"] is False
        # the Go handler parsed exactly the Python caller's pressure
        assert line["peer_present"] is True and line["invalid"] == 0
        assert line["peer"] == {**pressure_json(mine), "instance_id": instance_id()}
        assert {**line["own"], "sampled_at_unix_ms": 0} == {**go_own, "sampled_at_unix_ms": 0}
    for method, caller in replies.items():
        assert caller.present, method
        assert (caller.usage_ratio, caller.level, caller.module) == (0.86, 1, "order")
        assert caller.invalid == 0
    # the Python client recorded the Go service's pressure for this target
    assert reported is not None
    go_instance = go_own.pop("instance_id")  # the Go server names its process
    assert go_instance != 0 and go_instance != instance_id()
    assert pressure_json(reported) == go_own
    assert reported == pressure_from_json(go_own)


@pytest.mark.parametrize("client", ["sync", "aio"])
def test_go_level3_sheds_python_client_then_fails_fast(go_bin: Path, client: str) -> None:
    rig = client_rig()
    argv = inventory_argv(go_bin, 0.97, "-force-level", "3")
    with GoServer(argv) as server:
        target = server.address
        if client == "sync":
            outcome = _sync_level3(target, rig)
        else:
            outcome = asyncio.run(asyncio.wait_for(_aio_level3(target, rig), 30))
        server.wait_events("call", 2)
        server.stop()
    first, trailers, second, ping_caller, blocked = outcome
    assert first == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailers["grpc-retry-pushback-ms"] == "1000"
    assert trailers["x-memory-level"] == "3" and trailers["x-memory-usage"] == "97%"
    peer = rig.guard.peers.get(target)
    assert peer is not None and peer.level == Level.CRITICAL and peer.module == "inventory"
    assert blocked
    assert second == grpc.StatusCode.RESOURCE_EXHAUSTED  # failed locally
    assert rig.guard.telemetry.counts[FAST_FAILS] == 1
    assert ping_caller.present and ping_caller.module == "order"  # core call went through
    calls = server.events("call")
    assert [(c["method"], c["code"]) for c in calls] == [
        (SERVICE + "GetItem", "RESOURCE_EXHAUSTED"),
        (SERVICE + "Ping", "OK"),
    ]
    assert server.events("stopped") == [{"event": "stopped", "calls": 2, "shed": 1, "invalid": 0}]


def _sync_level3(target: str, rig: Rig) -> tuple[Any, dict[str, Any], Any, Any, bool]:
    channel = grpc.intercept_channel(
        grpc.insecure_channel(target), client_interceptor(rig.guard, target)
    )
    try:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetItem(inventory_pb2.GetItemRequest(sku="abc"), timeout=5)
        first, trailers = err.value.code(), dict(err.value.trailing_metadata() or ())
        blocked = rig.guard.peers.blocked(target)
        with pytest.raises(grpc.RpcError) as err2:
            stub.GetItem(inventory_pb2.GetItemRequest(sku="abc"), timeout=5)
        ping = stub.Ping(inventory_pb2.PingRequest(), timeout=5)
        return first, trailers, err2.value.code(), ping.caller, blocked
    finally:
        channel.close()


async def _aio_level3(target: str, rig: Rig) -> tuple[Any, dict[str, Any], Any, Any, bool]:
    interceptors = aio_client_interceptors(rig.guard, target)
    recorded = Recorded(interceptors)
    async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetItem(inventory_pb2.GetItemRequest(sku="abc"), timeout=5)
        first, trailers = err.value.code(), dict(err.value.trailing_metadata() or ())
        await recorded.reach(1)  # the done callback has recorded the report
        blocked = rig.guard.peers.blocked(target)
        with pytest.raises(grpc.aio.AioRpcError) as err2:
            await stub.GetItem(inventory_pb2.GetItemRequest(sku="abc"), timeout=5)
        ping = await stub.Ping(inventory_pb2.PingRequest(), timeout=5)
        return first, trailers, err2.value.code(), ping.caller, blocked


# --- 4. the same bytes in both languages -------------------------------------------------------


def vector_files() -> list[Path]:
    return sorted(p for p in VECTORS.glob("*.json") if p.name != "parse.json")


def random_pressures(n: int, seed: int = 20240601) -> list[Pressure]:
    """Pressures around the encoder's edges: rounding halves, clamps, big capacities, no version."""
    rng = random.Random(seed)
    usages = [0.0, 1.0, 0.00049, 0.0005, 0.00051, 0.6845, 0.9995, 1.2345, 9.9999, 10.0, 12.0]
    out = []
    for i in range(n):
        usage = (
            usages[i]
            if i < len(usages)
            else rng.choice(
                [
                    rng.random(),
                    rng.random() * 12,
                    round(rng.random(), 4),
                    rng.randrange(2000) / 2000,
                ]
            )
        )
        capacity = rng.choice([0, MIB - 1, 100 * MIB, 2048 * MIB + 17, rng.randrange(2**50)])
        out.append(
            Pressure(
                usage_ratio=usage,
                used_bytes=int(usage * capacity),
                capacity_bytes=capacity,
                alloc_rate_bytes_per_sec=rng.random() * 50 * MIB,
                alloc_rate_ratio=rng.choice([0.0, rng.random() * 4]),
                level=Level(rng.randrange(4)),
                contract_version=rng.choice(["", "v1", "v1.2", "c-7_x.Y"]),
                module=rng.choice(["", "inventory", "order"]),
                sampled_at=rng.choice([0, 1_800_000_000_250, rng.randrange(2**41)]) / 1000,
                live_bytes=rng.choice([None, 0, rng.randrange(2**40)]),
                live_source=rng.choice(["", "pymalloc+mallinfo2", "gc/heap/live+stacks"]),
                plateau_bytes=rng.choice([None, rng.randrange(1, 2**40)]),
            )
        )
    return out


def test_every_vector_and_random_pressure_encodes_alike(go_bin: Path) -> None:
    cases: dict[str, Pressure] = {}
    instances: dict[str, int] = {}  # the instance a vector's sender names (0: none)
    expected: dict[str, dict[str, Any]] = {}
    for path in vector_files():
        vec = json.loads(path.read_text())
        cases[path.stem] = pressure_from_json(vec["pressure"])
        instances[path.stem] = vec.get("instance_id", 0)
        expected[path.stem] = {"metadata": vec["metadata"], "orca": vec["orca"]}
    assert len(cases) >= 6 and any(instances.values())
    for i, p in enumerate(random_pressures(300)):
        cases[f"random-{i}"] = p
    stdin = "".join(
        json.dumps({"id": k, "pressure": {**pressure_json(p), "instance_id": instances.get(k, 0)}})
        + "\n"
        for k, p in cases.items()
    )
    go = {line["id"]: line for line in run_lines([str(go_bin / "vectorenc")], stdin=stdin)}
    assert list(go) == list(cases)
    mismatches = []
    for key, p in cases.items():
        py = {
            "metadata": wire_text(wire.encode(p, instances.get(key, 0))),
            "orca": base64.b64encode(wire.orca_report(p)).decode(),
        }
        got = {"metadata": go[key]["metadata"], "orca": go[key]["orca"]}
        if got != py:
            mismatches.append((key, p, got, py))
        if key in expected:
            assert py == expected[key], key  # and both equal the file
    assert mismatches == []


def parse_cases() -> list[tuple[str, list[tuple[str, str | bytes]]]]:
    """Metadata to decode: each parse.json case alone, the vectors, and mixed sets."""
    cases = json.loads((VECTORS / "parse.json").read_text())["cases"]
    out: list[tuple[str, list[tuple[str, str | bytes]]]] = []
    for i, case in enumerate(cases):
        raw = case["value"] if "value" in case else base64.b64decode(case["value_base64"])
        pairs: list[tuple[str, str | bytes]] = [(case["key"], raw)]
        if case["key"] in (wire.CAPACITY, wire.CONTRACT):
            pairs.append((wire.LEVEL, "1"))  # alone they decode differently: see below
        out.append((f"parse-{i}", pairs))
    for path in vector_files():
        md = json.loads(path.read_text())["metadata"]
        pairs = [(k, base64.b64decode(v) if k.endswith("-bin") else v) for k, v in md]
        out.append((path.stem, pairs))
        out.append((path.stem + "-text", [kv for kv in pairs if not kv[0].endswith("-bin")]))
        out.append((path.stem + "-bad-bin", [*pairs[:-1], (wire.PRESSURE_BIN, b"\xff\xff")]))
    absent = json.loads((VECTORS / "calm" / "absent.json").read_text())["cases"]
    for i, case in enumerate(absent):  # no keys: calm, in both languages
        out.append((f"absent-{i}", [(k, v) for k, v in case["metadata"]]))
    out.append(("usage+level", [(wire.USAGE, "97%"), (wire.LEVEL, "3")]))
    out.append(("repeated", [(wire.USAGE, "50%"), (wire.USAGE, "x"), (wire.USAGE, "60%")]))
    out.append(("level-only", [(wire.LEVEL, "2"), (wire.LEVEL, "9")]))
    return out


def decode_json(decoded: wire.Decoded) -> dict[str, Any]:
    p = decoded.pressure
    named = {"instance_id": decoded.instance_id} if decoded.instance_id else {}
    return {
        "present": p is not None,
        "pressure": None if p is None else {**pressure_json(p), **named},
        "invalid": len(decoded.invalid),
    }


def decode_input(cases: list[tuple[str, list[tuple[str, Any]]]]) -> str:
    """vectorenc's input for decoding: every value in base64."""
    lines = []
    for name, pairs in cases:
        md = [
            [k, base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()]
            for k, v in pairs
        ]
        lines.append(json.dumps({"id": name, "metadata": md}) + "\n")
    return "".join(lines)


def test_metadata_decodes_alike(go_bin: Path) -> None:
    cases = parse_cases()
    stdin = decode_input(cases)
    go = {line.pop("id"): line for line in run_lines([str(go_bin / "vectorenc")], stdin=stdin)}
    mismatches = {
        name: (go[name], decode_json(wire.decode(pairs)))
        for name, pairs in cases
        if go[name] != decode_json(wire.decode(pairs))
    }
    assert mismatches == {}


NAN, INF = float("nan"), float("inf")


def _bin(**fields: Any) -> bytes:
    data: bytes = memcontract_pb2.MemoryPressure(**fields).SerializeToString()
    return data


# Metadata the two decoders once disagreed on: each is now pinned to agree.
DECODE_EDGES: dict[str, list[tuple[str, Any]]] = {
    # capacity or contract version alone describe no pressure, in both languages
    "capacity-only": [(wire.CAPACITY, "2048")],
    "contract-only": [(wire.CONTRACT, "v1.2")],
    # a -bin whose contract_version is not a valid x-memory-contract value is invalid
    "bin-bad-contract-version": [
        (wire.PRESSURE_BIN, _bin(usage_ratio=0.5, level=2, contract_version="v1 2"))
    ],
    # a -bin over 1024 bytes is not a peer's pressure
    "bin-over-1024-bytes": [(wire.PRESSURE_BIN, _bin(usage_ratio=0.5, level=2, module="m" * 2000))],
    # a -bin usage over 1000 % is read as 1000 %, as x-memory-usage carries it
    "bin-usage-1e300": [(wire.PRESSURE_BIN, _bin(usage_ratio=1e300, level=4))],
    # allocation rates that are no number, or negative, make a -bin invalid
    "bin-nan-rate": [(wire.PRESSURE_BIN, _bin(usage_ratio=0.5, level=4, alloc_rate_ratio=NAN))],
    "bin-inf-rate": [
        (wire.PRESSURE_BIN, _bin(usage_ratio=0.5, level=4, alloc_rate_bytes_per_sec=INF))
    ],
    "bin-negative-rate": [(wire.PRESSURE_BIN, _bin(usage_ratio=0.5, level=4, alloc_rate_ratio=-1))],
}


@pytest.mark.parametrize("name", list(DECODE_EDGES))
def test_decode_edges_agree(go_bin: Path, name: str) -> None:
    pairs = DECODE_EDGES[name]
    (go,) = run_lines([str(go_bin / "vectorenc")], stdin=decode_input([(name, pairs)]))
    go.pop("id")
    assert go == decode_json(wire.decode(pairs))


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: str(p.relative_to(REPO)))
def test_contract_loads_to_equal_messages(go_bin: Path, path: Path) -> None:
    first = yaml.safe_load(path.read_text())["modules"][0]["name"]
    py = Contract.load(path, module=first).to_proto()
    (line,) = run_lines([str(go_bin / "contractdump"), "-module", first, str(path)])
    assert "error" not in line, line
    go = json_format.Parse(json.dumps(line["contract"]), memcontract_pb2.Contract())
    assert json_format.MessageToDict(go) == json_format.MessageToDict(py)  # readable diff
    assert go == py


@pytest.mark.parametrize(
    ("method", "request_bytes", "code"),
    [
        (SERVICE + "Nope", b"", grpc.StatusCode.UNIMPLEMENTED),
        ("/nope.v1.Nope/Get", b"", grpc.StatusCode.UNIMPLEMENTED),
        (SERVICE + "GetItem", b"\xff\xff\xff", grpc.StatusCode.INTERNAL),  # does not decode
    ],
    ids=["unknown-method", "unknown-service", "undecodable-request"],
)
def test_go_server_trailers_on_every_outcome(
    go_bin: Path, method: str, request_bytes: bytes, code: grpc.StatusCode
) -> None:
    # A plain grpcio channel: the raw status and trailers as the Go server sent them.
    with (
        GoServer(inventory_argv(go_bin, 0.91)) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        call = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as info:
            call(request_bytes, timeout=10)
    err = info.value
    assert err.code() == code  # type: ignore[attr-defined]
    decoded = wire.decode(tuple(err.trailing_metadata()))  # type: ignore[attr-defined]
    assert decoded.invalid == ()
    assert decoded.pressure is not None
    assert (decoded.pressure.usage_ratio, decoded.pressure.module) == (0.91, "inventory")


# --- 5. per backend, calm is free: mixed peers ----------------------------------------------


def test_calm_python_client_tells_a_go_server_once(go_bin: Path) -> None:
    rig = Rig(make_contract(name="order", version="c-7", core_methods=(PING,)))
    rig.step(0.30)  # quiet: its keys travel once per change per channel
    with GoServer(inventory_argv(go_bin, 0.5)) as server:
        replies = sync_calls(server.address, rig)
        lines = server.wait_events("call", 4)
    seen = [line["peer_present"] for line in lines]
    assert seen == [True, False, False, False]  # the first call told; absent after: calm
    assert [caller.present for caller in replies.values()] == seen
    assert lines[0]["peer"] == {**pressure_json(rig.guard.pressure), "instance_id": instance_id()}


def test_calm_go_server_tells_a_python_client_once_and_names_itself(go_bin: Path) -> None:
    rig = client_rig()
    with GoServer(inventory_argv(go_bin, 0.5)) as server:
        target = server.address
        channel = grpc.intercept_channel(
            grpc.insecure_channel(target), client_interceptor(rig.guard, target)
        )
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        trailers = []
        for _ in range(3):
            _, call = stub.GetItem.with_call(inventory_pb2.GetItemRequest(sku="a"), timeout=5)
            trailers.append(dict(call.trailing_metadata() or ()))
        channel.close()
    has_keys = [wire.USAGE in t for t in trailers]
    assert has_keys == [True, False, False]  # a quiet Go server: the connection's first call
    decoded = wire.decode(tuple(trailers[0].items()))
    assert decoded.instance_id not in (0, instance_id())  # the Go process names itself
    assert rig.guard.peers.instances(target) == 1 and not rig.guard.peers.blocked(target)


@pytest.mark.parametrize("client", ["sync", "aio"])
def test_python_client_over_go_backends_one_at_level_3_keeps_the_calm_ones(
    go_bin: Path, client: str
) -> None:
    # One Go backend at level 3 (its keys on every call), two calm ones (their keys on a
    # connection's first call only): the Python channel must not fail fast.
    rig = client_rig()
    hot = inventory_argv(go_bin, 0.97, "-force-level", "3")
    calm = inventory_argv(go_bin, 0.3)
    with GoServer(hot) as a, GoServer(calm) as b, GoServer(calm) as c:
        target = "ipv4:" + ",".join(s.address for s in (a, b, c))
        config = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
        options = [("grpc.service_config", config)]
        if client == "sync":
            codes = _round_robin_sync(target, options, rig)
        else:
            codes = asyncio.run(asyncio.wait_for(_round_robin_aio(target, options, rig), 60))
    ok = codes.count(grpc.StatusCode.OK)
    assert rig.guard.telemetry.counts[FAST_FAILS] == 0
    assert ok >= 0.6 * len(codes), codes
    assert rig.guard.peers.instances(target) == 3


def _round_robin_sync(target: str, options: Any, rig: Rig) -> list[grpc.StatusCode]:
    channel = grpc.intercept_channel(
        grpc.insecure_channel(target, options=options), client_interceptor(rig.guard, target)
    )
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    try:
        deadline = time.monotonic() + 20
        while rig.guard.peers.instances(target) < 3:  # Ping (core) until all three answered
            assert time.monotonic() < deadline
            stub.Ping(inventory_pb2.PingRequest(), timeout=5)
        codes = []
        for _ in range(150):
            try:
                stub.GetItem(inventory_pb2.GetItemRequest(sku="a"), timeout=5)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())
        return codes
    finally:
        channel.close()


async def _round_robin_aio(target: str, options: Any, rig: Rig) -> list[grpc.StatusCode]:
    interceptors = aio_client_interceptors(rig.guard, target)
    async with grpc.aio.insecure_channel(
        target, options=options, interceptors=interceptors
    ) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        deadline = time.monotonic() + 20
        while rig.guard.peers.instances(target) < 3:
            assert time.monotonic() < deadline
            await stub.Ping(inventory_pb2.PingRequest(), timeout=5)
        codes = []
        for _ in range(150):
            try:
                await stub.GetItem(inventory_pb2.GetItemRequest(sku="a"), timeout=5)
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as err:
                codes.append(err.code())
        return codes
