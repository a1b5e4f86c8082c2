"""Interceptors over real loopback servers: sync, aio and sync-handlers-on-aio, with the
interceptor and with registration-time wrapping, for all four arities and every outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
import pytest
from memcontract.interceptors import (
    AioFastFailure,
    aio_client_interceptors,
    client_interceptor,
    wrap_channel,
)

from memcontract import Level
from memcontract.telemetry import FAST_FAILS, SHEDS, WOULD_SHED

from .grpc_support import ARITIES, CORE, SERVICE, Calls, call_aio, call_sync, serve
from .support import Metrics, Recorded, Rig, make_contract

if TYPE_CHECKING:
    from memcontract import Guard

SERVERS = [("sync", False), ("aio", False), ("aio-sync", False), ("sync", True), ("aio", True)]
SERVER_IDS = ["sync", "aio", "aio-sync-handlers", "sync-wrapped", "aio-wrapped"]

# (request mode, expected code, whether the handler's own trailer is expected)
OUTCOMES = [
    (b"ok", grpc.StatusCode.OK, False),
    (b"error", grpc.StatusCode.UNKNOWN, False),
    (b"abort", grpc.StatusCode.INVALID_ARGUMENT, False),
    (b"trailers", grpc.StatusCode.OK, True),
    (b"trailers-abort", grpc.StatusCode.FAILED_PRECONDITION, True),
]


def server_rig(metrics: Metrics | None = None, **contract: object) -> Rig:
    rig = Rig(
        make_contract(core_methods=(CORE,), retry_pushback_ms=300, **contract),
        meter_provider=None if metrics is None else metrics.provider,
    )
    rig.step(0.42)
    return rig


def at_level3(rig: Rig) -> Rig:
    for _ in range(3):
        rig.step(0.97)
    assert rig.guard.level == Level.CRITICAL
    return rig


@pytest.fixture(params=SERVERS, ids=SERVER_IDS)
def server_kind(request: pytest.FixtureRequest) -> tuple[str, bool]:
    return request.param  # type: ignore[no-any-return]


def assert_our_trailers(trailers: dict[str, object], level: int) -> None:
    assert trailers["x-memory-level"] == str(level)
    assert trailers["x-memory-usage"] == ("42%" if level == 0 else "97%")
    assert trailers["x-memory-capacity"] == "100"
    assert trailers["x-memory-contract"] == "v1.2"
    assert isinstance(trailers["x-memory-pressure-bin"], bytes)


@pytest.mark.parametrize("arity", ARITIES)
@pytest.mark.parametrize(
    ("mode", "code", "own_trailer"), OUTCOMES, ids=[o[0].decode() for o in OUTCOMES]
)
def test_outcomes_keep_status_and_carry_trailers(
    server_kind: tuple[str, bool], arity: str, mode: bytes, code: grpc.StatusCode, own_trailer: bool
) -> None:
    kind, wrapped = server_kind
    rig, calls = server_rig(), Calls()
    with (
        serve(kind, rig.guard, calls, wrapped=wrapped) as address,
        grpc.insecure_channel(address) as channel,
    ):
        got, responses, trailers = call_sync(channel, arity, mode)
    assert got == code
    assert calls.ran == 1
    assert_our_trailers(trailers, 0)
    if own_trailer:
        assert trailers["x-app"] == "kept"
    if mode == b"trailers":
        assert trailers["x-app-bin"] == b"\x00\x01"
    if code == grpc.StatusCode.OK:
        assert responses[-1] == b"echo:" + mode
        assert len(responses) == (
            2
            if "Stream" in arity.split("Unary")[-1]
            or arity.endswith("StreamStream")
            or arity == "UnaryStream"
            else 1
        )


@pytest.mark.parametrize("arity", ARITIES)
def test_level3_sheds_non_core_without_running_the_handler(
    server_kind: tuple[str, bool], arity: str, metrics: Metrics
) -> None:
    kind, wrapped = server_kind
    rig, calls = at_level3(server_rig(metrics)), Calls()
    with (
        serve(kind, rig.guard, calls, wrapped=wrapped) as address,
        grpc.insecure_channel(address) as channel,
    ):
        code, _, trailers = call_sync(channel, arity, b"ok")
        core_code, _, core_trailers = call_sync(channel, "Core", b"ok")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert calls.ran == 1  # only the core call ran
    assert_our_trailers(trailers, 3)
    assert trailers["grpc-retry-pushback-ms"] == "300"
    assert core_code == grpc.StatusCode.OK
    assert_our_trailers(core_trailers, 3)
    # As an OpenTelemetry exporter sees it: one shed, level 3, usage 0.97.
    assert metrics.value(SHEDS) == 1
    assert metrics.value("memcontract.level") == 3
    assert metrics.value("memcontract.memory.usage_ratio") == 0.97


def test_shed_details_name_module_and_level() -> None:
    rig, calls = at_level3(server_rig()), Calls()
    with (
        serve("sync", rig.guard, calls) as address,
        grpc.insecure_channel(address) as channel,
        pytest.raises(grpc.RpcError) as err,
    ):
        channel.unary_unary("/test.Echo/UnaryUnary")(b"ok", timeout=5)
    details = err.value.details()  # type: ignore[attr-defined]
    assert "test-module" in details and "level 3" in details


def test_health_is_never_shed() -> None:
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-not-found]

    rig = at_level3(server_rig())
    from concurrent import futures

    from memcontract.interceptors import server_interceptor

    server = grpc.server(
        futures.ThreadPoolExecutor(2), interceptors=[server_interceptor(rig.guard)]
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert dict(call.trailing_metadata())["x-memory-level"] == "3"
    finally:
        server.stop(0).wait(5)


def test_dry_run_reports_level3_but_does_not_shed(metrics: Metrics) -> None:
    rig, calls = at_level3(server_rig(metrics, dry_run=True)), Calls()
    with serve("sync", rig.guard, calls) as address, grpc.insecure_channel(address) as channel:
        code, _, trailers = call_sync(channel, "UnaryUnary", b"ok")
    assert code == grpc.StatusCode.OK and trailers["x-memory-level"] == "3"
    assert metrics.value(WOULD_SHED) == 1
    assert metrics.value(SHEDS) == 0
    assert metrics.value("memcontract.level") == 3


@pytest.fixture
def client_rig() -> Iterator[Rig]:
    # the caller lists the callee methods it must never fail fast on (health is always core)
    rig = Rig(
        make_contract(name="order", version="c-7", core_methods=(CORE,), retry_pushback_ms=200)
    )
    rig.step(0.66)
    yield rig


SYNC_CLIENTS = ["interceptor", "wrapped-channel"]


def sync_channel(address: str, guard: Guard, how: str) -> Any:
    """A grpcio channel to ``address`` guarded by ``how`` (the interceptor, or wrap_channel)."""
    if how == "interceptor":
        return grpc.intercept_channel(
            grpc.insecure_channel(address), client_interceptor(guard, address)
        )
    return wrap_channel(grpc.insecure_channel(address), guard, address)


@pytest.mark.parametrize("how", SYNC_CLIENTS)
@pytest.mark.parametrize("arity", ARITIES)
def test_both_sides_see_each_other_sync(
    server_kind: tuple[str, bool], arity: str, how: str, client_rig: Rig
) -> None:
    kind, wrapped = server_kind
    rig, calls = server_rig(), Calls()
    with serve(kind, rig.guard, calls, wrapped=wrapped) as address:
        channel = sync_channel(address, client_rig.guard, how)
        code, _, _ = call_sync(channel, arity, b"ok")
        channel.close()
    assert code == grpc.StatusCode.OK
    seen = calls.peers[0]
    assert seen is not None and (seen.usage_ratio, seen.module, seen.contract_version) == (
        0.66,
        "order",
        "c-7",
    )
    reported = client_rig.guard.peers.get(address)
    assert reported is not None and reported == rig.guard.pressure


AIO_CLIENTS = ["interceptors", "wrapped-channel"]


def aio_channel(address: str, guard: Guard, how: str) -> tuple[Any, Recorded]:
    """An aio channel to ``address`` guarded by ``how`` (the interceptors, or wrap_channel),
    and what its side has read."""
    if how == "interceptors":
        interceptors = aio_client_interceptors(guard, address)
        channel = grpc.aio.insecure_channel(address, interceptors=interceptors)
        return channel, Recorded(interceptors)
    wrapped = wrap_channel(grpc.aio.insecure_channel(address), guard, address)
    return wrapped, Recorded([wrapped])


@pytest.mark.parametrize("how", AIO_CLIENTS)
@pytest.mark.parametrize("arity", ARITIES)
def test_both_sides_see_each_other_aio(
    server_kind: tuple[str, bool], arity: str, how: str, client_rig: Rig
) -> None:
    kind, wrapped = server_kind
    rig, calls = server_rig(), Calls()

    async def run(address: str) -> grpc.StatusCode:
        channel, recorded = aio_channel(address, client_rig.guard, how)
        async with channel:
            code, _, _ = await call_aio(channel, arity, b"ok")
            await recorded.reach(1)  # the done callback has read the trailers
            return code

    with serve(kind, rig.guard, calls, wrapped=wrapped) as address:
        assert asyncio.run(run(address)) == grpc.StatusCode.OK
    seen = calls.peers[0]
    assert seen is not None and seen.usage_ratio == 0.66
    assert client_rig.guard.peers.get(address) == rig.guard.pressure


@pytest.mark.parametrize("arity", ["UnaryUnary", "UnaryStream"])
def test_caller_pressure_is_the_calls_own(
    server_kind: tuple[str, bool], arity: str, client_rig: Rig
) -> None:
    # A call from a caller with memcontract, then one without: the second handler must see
    # nothing (the first call's binding never outlives it, on any server kind).
    kind, wrapped = server_kind
    rig, calls = server_rig(), Calls()
    with serve(kind, rig.guard, calls, wrapped=wrapped) as address:
        with grpc.intercept_channel(
            grpc.insecure_channel(address), client_interceptor(client_rig.guard, address)
        ) as channel:
            call_sync(channel, arity, b"ok")
        with grpc.insecure_channel(address) as channel:
            call_sync(channel, arity, b"ok")
    first, second = calls.peers
    assert first is not None and first.module == "order"
    assert second is None


CLIENTS = [*(("sync", h) for h in SYNC_CLIENTS), *(("aio", h) for h in AIO_CLIENTS)]
CLIENT_IDS = ["sync", "sync-wrapped", "aio", "aio-wrapped"]


@pytest.mark.parametrize("client", CLIENTS, ids=CLIENT_IDS)
def test_fail_fast_window(client: tuple[str, str], client_rig: Rig, metrics: Metrics) -> None:
    mode, how = client
    rig, calls = at_level3(server_rig(metrics)), Calls()
    with serve("sync", rig.guard, calls) as address:
        if mode == "aio":
            codes = asyncio.run(_aio_fail_fast_run(address, client_rig, how))
        else:
            channel = sync_channel(address, client_rig.guard, how)
            codes = [
                call_sync(channel, a, b"ok")[0]
                for a in ("UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream", "Core")
            ]
            client_rig.clock.advance(0.35)  # past the server's 300 ms pushback (the table's clock)
            codes.append(call_sync(channel, "UnaryUnary", b"ok")[0])
            channel.close()
    re = grpc.StatusCode.RESOURCE_EXHAUSTED
    # first call shed by the server; the next three fail locally; core goes through; after the
    # pushback window the call reaches the server again (and is shed there again)
    assert codes == [re, re, re, re, grpc.StatusCode.OK, re]
    assert client_rig.guard.telemetry.counts[FAST_FAILS] == 3
    assert metrics.value(SHEDS) == 2
    assert calls.ran == 1


async def _aio_fail_fast_run(address: str, client_rig: Rig, how: str) -> list[grpc.StatusCode]:
    channel, recorded = aio_channel(address, client_rig.guard, how)
    async with channel:
        codes = []
        for arity in ("UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream", "Core"):
            code, _, trailers = await call_aio(channel, arity, b"ok")
            codes.append(code)
            if arity == "UnaryStream":  # failed locally: the window left, as pushback
                assert 0 < int(trailers["grpc-retry-pushback-ms"]) <= 300
            # Calls failed fast are never sent, so nothing is read for them: the shed call
            # and the core call are the two whose trailers must be read before going on.
            await recorded.reach(1 if arity != "Core" else 2)
        client_rig.clock.advance(0.35)
        codes.append((await call_aio(channel, "UnaryUnary", b"ok"))[0])
        return codes


def test_str_for_bin_key_never_reaches_the_wire(client_rig: Rig) -> None:
    rig = server_rig()
    seen: list[object] = []

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.extend(v for k, v in context.invocation_metadata() if k == "x-user-bin")
        context.set_trailing_metadata((("x-handler-bin", "text, not bytes"),))
        return b"ok"

    from concurrent import futures

    from memcontract.interceptors import server_interceptor

    server = grpc.server(
        futures.ThreadPoolExecutor(2), interceptors=[server_interceptor(rig.guard)]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.S", {"M": grpc.unary_unary_rpc_method_handler(handler)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = grpc.intercept_channel(
            grpc.insecure_channel(f"127.0.0.1:{port}"), client_interceptor(client_rig.guard)
        )
        started = time.monotonic()
        _, call = channel.unary_unary("/t.S/M").with_call(
            b"x", timeout=5, metadata=(("x-user-bin", "abc"),)
        )
        assert time.monotonic() - started < 4  # no hang until the deadline
        assert dict(call.trailing_metadata())["x-handler-bin"] == b"text, not bytes"
        assert seen == [b"abc"]
        assert all(
            isinstance(v, bytes)
            for k, v in rig.guard.snapshot.trailing_metadata
            if k.endswith("-bin")
        )
        channel.close()
    finally:
        server.stop(0).wait(5)


class _Answers(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """An interceptor below memcontract's that answers without making a call."""

    async def intercept_unary_unary(
        self, continuation: object, details: object, request: bytes
    ) -> bytes:
        return b"answered: " + request


def test_aio_client_over_an_interceptor_that_answers_itself(client_rig: Rig) -> None:
    # grpc.aio hands memcontract a response object without done callbacks: the call still
    # returns the answer, and nothing is recorded for a callee that never answered.
    async def run() -> bytes:
        interceptors = [*aio_client_interceptors(client_rig.guard, "nowhere"), _Answers()]
        async with grpc.aio.insecure_channel("127.0.0.1:1", interceptors=interceptors) as channel:
            response: bytes = await channel.unary_unary("/x.Y/Z")(b"hi", timeout=2)
            return response

    assert asyncio.run(run()) == b"answered: hi"
    assert client_rig.guard.peers.get("nowhere") is None


def test_a_wrapped_aio_channel_fails_fast_with_a_finished_call(client_rig: Rig) -> None:
    # What a wrapped channel hands back for a call failed locally behaves as a finished,
    # failed call of any arity: nothing is sent, and every way of reading it says why.
    rig, calls = at_level3(server_rig()), Calls()

    async def run(address: str) -> None:
        channel, recorded = aio_channel(address, client_rig.guard, "wrapped-channel")
        async with channel:
            shed, _, _ = await call_aio(channel, "UnaryUnary", b"ok")
            assert shed == grpc.StatusCode.RESOURCE_EXHAUSTED
            await recorded.reach(1)
            call = channel.unary_unary(f"/{SERVICE}/UnaryUnary")(b"ok", timeout=5)
            assert isinstance(call, AioFastFailure) and call.done() and not call.cancelled()
            assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "fail fast" in await call.details()
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert 0 < call.time_remaining() <= 5
            # grpc.aio's stream-request methods take their arguments by position too
            by_position = channel.stream_unary(f"/{SERVICE}/StreamUnary")(iter([b"ok"]), 5)
            assert isinstance(by_position, AioFastFailure) and by_position.time_remaining() > 0
            stream = channel.stream_stream(f"/{SERVICE}/StreamStream")()
            assert stream.time_remaining() is None  # no deadline given
            with pytest.raises(asyncio.InvalidStateError):  # as a finished grpc.aio call's
                await stream.write(b"ok")
            await stream.done_writing()
            with pytest.raises(grpc.aio.AioRpcError):
                await stream.read()
            seen: list[object] = []
            stream.add_done_callback(seen.append)
            assert seen == [stream]

    with serve("aio", rig.guard, calls) as address:
        asyncio.run(run(address))
    assert calls.ran == 0  # the first call was shed by the server, the rest never sent
    assert client_rig.guard.telemetry.counts[FAST_FAILS] == 3


@pytest.mark.parametrize("client", CLIENTS, ids=CLIENT_IDS)
def test_a_callee_at_level3_that_admits_is_not_failed_fast(
    client: tuple[str, str], client_rig: Rig
) -> None:
    # A callee at level 3 that admits non-core calls (half-open, or here dry run) answers them
    # at level 3 without a pushback: they were served, so its callers keep sending them. (Each
    # such answer used to renew the fail-fast window: half-open got one probe per window.)
    rig, calls = at_level3(server_rig(dry_run=True)), Calls()
    arities = ["UnaryUnary", "Core", "UnaryUnary", "StreamUnary", "UnaryStream", "StreamStream"]

    async def run_aio(address: str) -> list[grpc.StatusCode]:
        channel, recorded = aio_channel(address, client_rig.guard, client[1])
        codes = []
        async with channel:
            for n, arity in enumerate(arities, 1):
                codes.append((await call_aio(channel, arity, b"ok"))[0])
                await recorded.reach(n)
        return codes

    with serve("sync", rig.guard, calls) as address:
        if client[0] == "sync":
            channel = sync_channel(address, client_rig.guard, client[1])
            codes = [call_sync(channel, arity, b"ok")[0] for arity in arities]
            channel.close()
        else:
            codes = asyncio.run(run_aio(address))
    assert codes == [grpc.StatusCode.OK] * len(arities)
    assert calls.ran == len(arities)
    assert client_rig.guard.telemetry.counts[FAST_FAILS] == 0
    reported = client_rig.guard.peers.get(address)
    assert reported is not None and reported.level == Level.CRITICAL  # still what it says


def test_a_wrapped_aio_channel_takes_stream_arguments_by_position(client_rig: Rig) -> None:
    rig, calls = server_rig(), Calls()

    async def run(address: str) -> bytes:
        channel, _ = aio_channel(address, client_rig.guard, "wrapped-channel")
        async with channel:
            method = channel.stream_unary(f"/{SERVICE}/StreamUnary")
            reply: bytes = await method(iter([b"ok"]), 5, (("x-user", "1"),))
            return reply

    with serve("aio", rig.guard, calls) as address:
        assert asyncio.run(run(address)) == b"echo:ok"
    assert calls.ran == 1
