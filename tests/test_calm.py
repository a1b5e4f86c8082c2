"""Calm is free (docs/design.md §5): while a process is quiet (level 0, below the level-1
thresholds) its keys travel only when they changed; a receiver reads absent keys as calm. Real
servers and channels on loopback; the guards step on a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from memcontract.interceptors import aio_client_interceptors, client_interceptor

from memcontract import wire
from memcontract.calm import REFRESH_S, version_of
from memcontract.pressure import Pressure

from .grpc_support import Calls, call_aio, call_sync, serve
from .support import Rig, make_contract
from .test_interceptors import SERVER_IDS, SERVERS

OURS = wire.KEYS
# A channel of its own connection (grpcio shares connections between a process's channels).
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
LADDER = {"confirm": (1, 1, 1), "recover_after": 1}


def keys(trailers: dict[str, Any]) -> str | None:
    """The usage the trailers carry, or ``None`` when they carry none of our keys."""
    if not OURS & set(trailers):
        return None
    assert set(trailers) >= OURS, trailers  # all of them, or none
    usage: str = trailers[wire.USAGE]
    return usage


def rig_at(usage: float) -> Rig:
    rig = Rig(make_contract(ladder=LADDER))
    rig.step(usage)
    return rig


@pytest.mark.parametrize("arity", ["UnaryUnary", "StreamUnary"])
@pytest.mark.parametrize("server_kind", SERVERS, ids=SERVER_IDS)
def test_a_quiet_server_tells_each_connection_once_per_change(
    server_kind: tuple[str, bool], arity: str
) -> None:
    kind, wrapped = server_kind
    rig = rig_at(0.42)
    with (
        serve(kind, rig.guard, Calls(), wrapped=wrapped) as address,
        grpc.insecure_channel(address, options=OWN_CONNECTION) as channel,
    ):

        def usages(n: int = 2, on: grpc.Channel = channel) -> list[str | None]:
            return [keys(call_sync(on, arity, b"ok")[2]) for _ in range(n)]

        assert usages() == ["42%", None]  # the connection's first call
        rig.step(0.46)
        assert usages() == [None, None]  # 4 points: not a change
        rig.step(0.47)
        assert usages() == ["47%", None]  # 5 points since the last change
        with grpc.insecure_channel(address, options=OWN_CONNECTION) as other:
            assert usages(on=other) == ["47%", None]  # another connection's first call
        rig.clock.advance(REFRESH_S)
        rig.step(0.47)
        assert usages() == ["47%", None]  # every 30 s per connection
        rig.step(0.85)  # level 1: every call
        assert rig.guard.level == 1
        assert usages(3) == ["85%"] * 3
        rig.step(0.3)  # back to level 0 and quiet: a change, told once
        assert rig.guard.level == 0
        assert usages() == ["30%", None]


def test_a_quiet_client_sends_its_keys_once_per_change_on_each_channel() -> None:
    server, client = rig_at(0.42), rig_at(0.30)
    calls = Calls()
    with serve("sync", server.guard, calls) as address:
        channel = grpc.intercept_channel(
            grpc.insecure_channel(address), client_interceptor(client.guard, address)
        )
        other = grpc.intercept_channel(
            grpc.insecure_channel(address), client_interceptor(client.guard, address)
        )
        for _ in range(3):
            call_sync(channel, "UnaryUnary", b"ok")
        call_sync(other, "UnaryUnary", b"ok")  # another channel: told once too
        client.step(0.36)
        call_sync(channel, "UnaryUnary", b"ok")
        call_sync(channel, "UnaryUnary", b"ok")
        client.step(0.85)  # level 1: every call
        call_sync(channel, "UnaryUnary", b"ok")
        call_sync(channel, "UnaryUnary", b"ok")
        channel.close()
        other.close()
    seen = [None if p is None else round(p.usage_ratio, 2) for p in calls.peers]
    assert seen == [0.3, None, None, 0.3, 0.36, None, 0.85, 0.85]


def test_a_quiet_aio_client_sends_its_keys_once_per_change() -> None:
    server, client = rig_at(0.42), rig_at(0.30)
    calls = Calls()

    async def run(address: str) -> None:
        interceptors = aio_client_interceptors(client.guard, address)
        async with grpc.aio.insecure_channel(address, interceptors=interceptors) as channel:
            for _ in range(2):
                await call_aio(channel, "UnaryUnary", b"ok")
            client.step(0.85)
            for _ in range(2):
                await call_aio(channel, "UnaryUnary", b"ok")

    with serve("aio", server.guard, calls) as address:
        asyncio.run(run(address))
    seen = [None if p is None else round(p.usage_ratio, 2) for p in calls.peers]
    assert seen == [0.3, None, 0.85, 0.85]


def test_a_calm_callee_that_says_nothing_never_blocks_and_its_instance_is_known() -> None:
    server, client = rig_at(0.42), rig_at(0.30)
    with serve("sync", server.guard, Calls()) as address:
        channel = grpc.intercept_channel(
            grpc.insecure_channel(address), client_interceptor(client.guard, address)
        )
        codes = [call_sync(channel, "UnaryUnary", b"ok")[0] for _ in range(5)]
        channel.close()
    assert codes == [grpc.StatusCode.OK] * 5
    assert client.guard.peers.instances(address) == 1
    reported = client.guard.peers.get(address)
    assert reported is not None and reported.usage_ratio == pytest.approx(0.42)
    client.clock.advance(client.guard.peers.ttl)
    assert client.guard.peers.get(address) is None  # expired: read as calm


@pytest.mark.parametrize("server_kind", SERVERS, ids=SERVER_IDS)
def test_a_streaming_response_always_carries_the_keys_and_tells_no_connection(
    server_kind: tuple[str, bool],
) -> None:
    kind, wrapped = server_kind
    rig = rig_at(0.42)
    with (
        serve(kind, rig.guard, Calls(), wrapped=wrapped) as address,
        grpc.insecure_channel(address, options=OWN_CONNECTION) as channel,
    ):
        streams = [keys(call_sync(channel, "UnaryStream", b"ok")[2]) for _ in range(2)]
        assert streams == ["42%", "42%"]
        # the unary call after them (as grpcurl's after its reflection stream): the first
        assert keys(call_sync(channel, "UnaryUnary", b"ok")[2]) == "42%"
        assert keys(call_sync(channel, "UnaryUnary", b"ok")[2]) is None


def test_an_error_ratio_that_moves_is_a_change() -> None:
    """A quiet process's ORCA report carries its errors over calls: when that moves by 5 points
    its peers hear it again (a report told once while shed calls still counted, just out of
    level 3, would otherwise hold a balancer's weight down until the refresh)."""
    rig = rig_at(0.42)
    calls = rig.guard.calls

    def after(n_calls: int, n_errors: int) -> Any:
        for _ in range(n_calls):
            calls.count_call()
        for _ in range(n_errors):
            calls.count_error()
        rig.step(0.42)
        return rig.guard.snapshot.wire

    first = after(100, 0)
    assert first.quiet
    assert after(100, 4) is first  # 4 points: not a change
    with_errors = after(100, 40)
    assert with_errors.number == first.number + 1 and with_errors.quiet
    assert after(100, 0).number == first.number + 2  # the errors stopped: a change again


def test_while_a_plateau_is_recorded_a_point_of_usage_is_a_change() -> None:
    """The live usage told after a level was left on live memory settles over a few seconds,
    and the calls shed just before fall out of the error ratio: with a plateau recorded, usage
    or the error ratio moving by 1 point is a change (5 points otherwise)."""
    module = make_contract().modules[0]
    plateau = {"plateau_bytes": 100 << 20}
    first = version_of(None, Pressure(usage_ratio=0.55, **plateau), module, error_ratio=0.04)
    kept = Pressure(usage_ratio=0.546, **plateau)
    assert version_of(first, kept, module, error_ratio=0.036) is first
    assert version_of(first, Pressure(usage_ratio=0.54, **plateau), module, 0.04).number == 1
    assert version_of(first, kept, module, error_ratio=0.03).number == 1
    calm = version_of(None, Pressure(usage_ratio=0.55), module, error_ratio=0.04)
    assert version_of(calm, Pressure(usage_ratio=0.54), module, error_ratio=0.0) is calm
