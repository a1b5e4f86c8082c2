"""The sync client adapter reads a blocking unary call's trailers inline (no done-callback):
over real loopback, with a FakeClock on the peer table, it must do exactly what
ClientSide.record does (tests/test_client_side.py): skip a repeat inside the fresh window,
refresh after it, see a change to level 3 at once, and read futures and errors too."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from memcontract.interceptors import client_interceptor, wrap_channel

from memcontract import Level, Pressure, wire
from memcontract.callees import CalleeTable
from memcontract.testing import FakeClock

from .support import Rig, make_contract, wait_until

CALM = Pressure(usage_ratio=0.40, capacity_bytes=1 << 30, module="inventory")
CRITICAL = Pressure(usage_ratio=0.97, capacity_bytes=1 << 30, level=Level.CRITICAL)
# What a callee at level 3 sends with a call it sheds: its keys and a pushback.
SHED = (*wire.encode(CRITICAL), (wire.RETRY_PUSHBACK, "1000"))
METHOD = "/test.Trailers/Echo"


class Callee:
    """A bare grpcio server whose trailers (and status) the test sets between calls."""

    def __init__(self) -> None:
        self.trailers: wire.Metadata = ()
        self.fail = False
        self.server = grpc.server(futures.ThreadPoolExecutor(2))

        def echo(request: bytes, context: Any) -> bytes:
            context.set_trailing_metadata(self.trailers)
            if self.fail:
                context.abort(grpc.StatusCode.UNAVAILABLE, "failing on purpose")
            return request

        handler = grpc.unary_unary_rpc_method_handler(echo)
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Trailers", {"Echo": handler}),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


@pytest.fixture(params=["interceptor", "wrap_channel"])
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[Callee, Any, CalleeTable, FakeClock]]:
    callee = Callee()
    clock = FakeClock()
    peers = CalleeTable(ttl=2.0, clock=clock.monotonic)
    guard = Rig(make_contract()).guard
    plain = grpc.insecure_channel(f"127.0.0.1:{callee.port}")
    if request.param == "interceptor":
        channel = grpc.intercept_channel(plain, client_interceptor(guard, "inventory", peers=peers))
    else:
        channel = wrap_channel(plain, guard, "inventory", peers=peers)
    yield callee, channel.unary_unary(METHOD), peers, clock
    channel.close()
    callee.server.stop(0)


def test_a_repeat_inside_the_fresh_window_is_skipped_and_a_change_is_seen_at_once(
    rig: tuple[Callee, Any, CalleeTable, FakeClock],
) -> None:
    callee, call, peers, clock = rig
    callee.trailers = wire.encode(CALM)
    assert call(b"x", timeout=5) == b"x"
    assert peers.get("inventory") is not None
    clock.advance(0.1)
    call(b"x", timeout=5)  # same bytes: only checked, the entry keeps its expiry
    clock.advance(1.95)
    assert peers.get("inventory") is None  # 2.05 s after the first record: expired
    call(b"x", timeout=5)
    assert peers.get("inventory") is not None
    callee.trailers = SHED  # new bytes, level 3: fail fast at once
    call(b"x", timeout=5)
    assert peers.blocked("inventory")


def test_a_repeat_after_the_fresh_window_refreshes_the_entry(
    rig: tuple[Callee, Any, CalleeTable, FakeClock],
) -> None:
    callee, call, peers, clock = rig
    callee.trailers = wire.encode(CALM)
    call(b"x", timeout=5)
    clock.advance(1.9)  # past ttl/4, before the ttl: the same bytes are recorded again
    call(b"x", timeout=5)
    clock.advance(1.9)
    assert peers.get("inventory") is not None


def test_futures_and_failed_calls_are_read_when_done(
    rig: tuple[Callee, Any, CalleeTable, FakeClock],
) -> None:
    callee, call, peers, _ = rig
    callee.trailers = SHED
    callee.fail = True
    with pytest.raises(grpc.RpcError) as failed:
        call(b"x", timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert peers.blocked("inventory")  # read from the error's trailers
    peers.record("inventory", CALM, None)
    callee.fail = False
    assert call.future(b"x", timeout=5).result() == b"x"
    # Read by the future's done-callback, which grpcio may run after result() has returned.
    wait_until(lambda: peers.blocked("inventory"), what="the future's trailers read")
