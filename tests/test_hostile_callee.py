"""Callees the client must not believe blindly (issue 10, items 2 and 3), over real loopback
servers: a callee without memcontract that claims level 3 with a pushback of 11.6 days, a
``-bin`` with an absurd usage, a callee outside the client's trust policy, and a channel at
level 3 beside a calm one. Sync and aio clients alike; the peer table runs on a FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
import pytest
from memcontract.interceptors import aio_client_interceptors, client_interceptor

from memcontract import wire
from memcontract.telemetry import FAST_FAILS, INVALID_HEADERS, UNTRUSTED_PEERS
from memcontract.trust import TrustPolicy
from memcontract.v1 import memcontract_pb2

from .support import Recorded, Rig, make_contract

METHOD = "/hostile.Callee/Call"
OK, SHED = grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED
# What a hostile (or broken) callee sends: level 3, and a pushback of 999,999,999 ms.
SILENCING = (("x-memory-level", "3"), ("grpc-retry-pushback-ms", "999999999"))


def _bin(**fields: Any) -> bytes:
    data: bytes = memcontract_pb2.MemoryPressure(**fields).SerializeToString()
    return data


class Callee:
    """A plain grpcio server (no memcontract) whose one method answers with ``trailers``."""

    def __init__(self, trailers: tuple[tuple[str, str | bytes], ...]) -> None:
        self.trailers = trailers
        self.calls = 0

    def _handle(self, request: bytes, context: Any) -> bytes:
        self.calls += 1
        context.set_trailing_metadata(self.trailers)
        return request

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        server = grpc.server(futures.ThreadPoolExecutor(2))
        handler = grpc.unary_unary_rpc_method_handler(self._handle)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("hostile.Callee", {"Call": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.stop(0).wait(5)


def calls(
    rig: Rig, addresses: list[str], *, aio: bool, trust: TrustPolicy | None = None
) -> list[grpc.StatusCode]:
    """One call to each address in turn, each address over its own channel whose interceptor
    is built without a target (the channel's own target is the key); the status codes."""
    if aio:
        return asyncio.run(_aio_calls(rig, addresses, trust))
    channels = {
        a: grpc.intercept_channel(
            grpc.insecure_channel(a), client_interceptor(rig.guard, trust=trust)
        )
        for a in dict.fromkeys(addresses)
    }
    codes = []
    for address in addresses:
        try:
            channels[address].unary_unary(METHOD)(b"x", timeout=5)
            codes.append(OK)
        except grpc.RpcError as err:
            codes.append(err.code())  # type: ignore[attr-defined]
    for channel in channels.values():
        channel.close()
    return codes


async def _aio_calls(
    rig: Rig, addresses: list[str], trust: TrustPolicy | None
) -> list[grpc.StatusCode]:
    interceptors = {
        a: aio_client_interceptors(rig.guard, trust=trust) for a in dict.fromkeys(addresses)
    }
    recorded = {a: Recorded(interceptors[a]) for a in interceptors}
    channels = {a: grpc.aio.insecure_channel(a, interceptors=interceptors[a]) for a in interceptors}
    codes = []
    for address in addresses:
        before, fast_fails = recorded[address].count, rig.guard.telemetry.counts[FAST_FAILS]
        try:
            await channels[address].unary_unary(METHOD)(b"x", timeout=5)
            codes.append(OK)
        except grpc.aio.AioRpcError as err:
            codes.append(err.code())
        if rig.guard.telemetry.counts[FAST_FAILS] == fast_fails:  # sent, so its trailers are read
            await recorded[address].reach(before + 1)
    for channel in channels.values():
        await channel.close()
    return codes


AIO = pytest.mark.parametrize("aio", [False, True], ids=["sync", "aio"])

# -- item 2: the fail-fast window is capped -------------------------------------------------


@AIO
@pytest.mark.parametrize(("max_fail_fast_ms", "window"), [(None, 30.0), (5000, 5.0)])
def test_a_callees_pushback_is_capped_by_the_contract(
    aio: bool, max_fail_fast_ms: int | None, window: float
) -> None:
    fields = {} if max_fail_fast_ms is None else {"max_fail_fast_ms": max_fail_fast_ms}
    rig = Rig(make_contract(**fields))
    callee = Callee(SILENCING)
    with callee.serving() as address:
        assert calls(rig, [address, address], aio=aio) == [OK, SHED]  # the 2nd never left
        assert callee.calls == 1
        assert rig.guard.peers.blocked_for(address) == pytest.approx(window)
        rig.clock.advance(window + 0.001)
        assert calls(rig, [address], aio=aio) == [OK]
    assert callee.calls == 2


def test_max_fail_fast_ms_zero_turns_failing_fast_off() -> None:
    rig = Rig(make_contract(max_fail_fast_ms=0))
    callee = Callee(SILENCING)
    with callee.serving() as address:
        assert calls(rig, [address, address, address], aio=False) == [OK, OK, OK]
    assert rig.guard.telemetry.counts[FAST_FAILS] == 0


@AIO
@pytest.mark.parametrize(
    "bad_bin",
    [
        _bin(level=4, usage_ratio=0.97, alloc_rate_bytes_per_sec=math.nan),
        _bin(level=4, usage_ratio=0.97, alloc_rate_ratio=math.inf),
        _bin(level=4, usage_ratio=0.97, alloc_rate_ratio=-1.0),
        _bin(level=4, usage_ratio=math.nan),
    ],
    ids=["nan-rate", "inf-rate-ratio", "negative-rate-ratio", "nan-usage"],
)
def test_a_bin_with_a_rate_that_is_no_number_is_ignored_and_counted(
    aio: bool, bad_bin: bytes
) -> None:
    rig = Rig(make_contract())
    callee = Callee(((wire.PRESSURE_BIN, bad_bin),))
    with callee.serving() as address:
        assert calls(rig, [address, address], aio=aio) == [OK, OK]
    assert rig.guard.peers.get(address) is None
    assert rig.guard.telemetry.counts[INVALID_HEADERS] == 2


@AIO
@pytest.mark.parametrize("usage", [1e300, 10.5])
def test_a_bin_usage_over_1000_percent_is_read_as_1000_percent(aio: bool, usage: float) -> None:
    rig = Rig(make_contract())
    callee = Callee(((wire.PRESSURE_BIN, _bin(level=2, usage_ratio=usage)),))
    with callee.serving() as address:
        assert calls(rig, [address], aio=aio) == [OK]
    reported = rig.guard.peers.get(address)
    assert reported is not None and reported.usage_ratio == 10.0


@AIO
def test_an_untrusted_callee_cannot_make_its_caller_fail_fast(aio: bool) -> None:
    rig = Rig(make_contract())
    callee = Callee(SILENCING)
    untrusted = TrustPolicy.only(networks=["10.0.0.0/8"])  # the callee is on 127.0.0.1
    with callee.serving() as address:
        assert calls(rig, [address] * 3, aio=aio, trust=untrusted) == [OK, OK, OK]
        assert rig.guard.peers.get(address) is None
        assert rig.guard.telemetry.counts[UNTRUSTED_PEERS] == 3
        # the same callee, trusted by address: believed
        trusted = TrustPolicy.only(networks=["127.0.0.0/8"])
        assert calls(rig, [address] * 2, aio=aio, trust=trusted) == [OK, SHED]
    assert callee.calls == 4


# -- item 3: channels are not confused with each other --------------------------------------


@AIO
def test_a_callee_at_level_3_does_not_make_a_calm_callee_fail_fast(aio: bool) -> None:
    rig = Rig(make_contract())
    critical, calm = Callee(SILENCING), Callee(())
    with critical.serving() as a, calm.serving() as b:
        codes = calls(rig, [a, *[b] * 5, a], aio=aio)
        assert codes == [OK, OK, OK, OK, OK, OK, SHED]
        assert calm.calls == 5 and critical.calls == 1
        assert rig.guard.peers.blocked(a) and not rig.guard.peers.blocked(b)
