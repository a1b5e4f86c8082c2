"""Pressure per backend (docs/design.md §7), with real channels over three real backends, each
its own process (its own instance) with a guard whose level the test sets.

A channel fails a non-core call fast only while every answer in the last window carried level
3, from two instances or more (or from the only one ever heard from); one probe per window
still goes out. So one hot backend among three costs its own calls only.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from memcontract.interceptors import aio_client_interceptors, client_interceptor, wrap_channel

from memcontract import Guard
from memcontract.telemetry import FAST_FAILS
from memcontract.testing import FakeProbe

from .pressureserver import CORE, ECHO, PUSHBACK_MS, PressureServer
from .support import make_contract

OK, SHED = grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED
ROUND_ROBIN = {"round_robin": {}}
# No blackout (weights count at once), weights recomputed every 100 ms; the expiration is
# grpc's default (3 min): a calm backend reports on a connection's first call and on a change.
WEIGHTED = {"weighted_round_robin": {"blackoutPeriod": "0s", "weightUpdatePeriod": "0.1s"}}


@pytest.fixture(scope="module")
def backends() -> Iterator[list[PressureServer]]:
    servers = [PressureServer() for _ in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


class Caller:
    """One client channel over the three backends, with memcontract's client interceptor or
    ``wrap_channel`` (``client``: "sync", "sync-wrapped", "aio", "aio-wrapped"; an aio loop runs
    on a thread of its own, and ``call`` waits for it)."""

    def __init__(self, backends: list[PressureServer], policy: dict[str, Any], client: str) -> None:
        contract = make_contract(retry_pushback_ms=PUSHBACK_MS, core_methods=(CORE,))
        self.guard = Guard(contract, probe=FakeProbe())
        self.target = "ipv4:" + ",".join(b.address for b in backends)
        config = json.dumps({"loadBalancingConfig": [policy]})
        self.options = [("grpc.service_config", config)]
        self.aio = client.startswith("aio")
        self.wrapped = client.endswith("wrapped")
        if self.aio:
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
            self.thread.start()
            self.aio_channel = self._on_loop(self._open_aio())
        else:
            channel = grpc.insecure_channel(self.target, options=self.options)
            self.channel = (
                wrap_channel(channel, self.guard, self.target)
                if self.wrapped
                else grpc.intercept_channel(channel, client_interceptor(self.guard, self.target))
            )

    def _on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    async def _open_aio(self) -> Any:
        if self.wrapped:
            channel = grpc.aio.insecure_channel(self.target, options=self.options)
            return wrap_channel(channel, self.guard, self.target)
        interceptors = aio_client_interceptors(self.guard, self.target)
        return grpc.aio.insecure_channel(
            self.target, options=self.options, interceptors=interceptors
        )

    async def _aio_call(self, method: str) -> grpc.StatusCode:
        call = self.aio_channel.unary_unary(method)(b"x", timeout=5)
        try:
            await call
        except grpc.aio.AioRpcError as err:
            return err.code()
        # the done callback that records the trailers has run once the code is known
        return await call.code()

    def call(self, method: str = ECHO) -> grpc.StatusCode:
        if self.aio:
            code: grpc.StatusCode = self._on_loop(self._aio_call(method))
            return code
        try:
            self.channel.unary_unary(method)(b"x", timeout=5)
            return OK
        except grpc.RpcError as err:
            return err.code()  # type: ignore[attr-defined, no-any-return]

    def fast_fails(self) -> int:
        return self.guard.telemetry.counts[FAST_FAILS]

    def close(self) -> None:
        if self.aio:
            self._on_loop(self.aio_channel.close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
        else:
            self.channel.close()


def caller(backends: list[PressureServer], policy: dict[str, Any], aio: str) -> Caller:
    """A caller that has heard from all three backends (core calls, never failed fast)."""
    c = Caller(backends, policy, aio)
    deadline = time.monotonic() + 20
    while c.guard.peers.instances(c.target) < 3:
        assert time.monotonic() < deadline, "the three backends never all answered"
        assert c.call(CORE) == OK
    return c


def levels(backends: list[PressureServer], *wanted: int) -> None:
    for backend, level in zip(backends, wanted, strict=True):
        backend.set_level(level)
    for backend in backends:
        backend.arrivals()  # forget what came before


# "...-wrapped": the channel guarded by wrap_channel instead of the interceptors
AIO = pytest.mark.parametrize("aio", ["sync", "sync-wrapped", "aio", "aio-wrapped"])


@AIO
def test_round_robin_one_hot_backend_costs_only_its_own_calls(
    backends: list[PressureServer], aio: str
) -> None:
    levels(backends, 3, 0, 0)
    c = caller(backends, ROUND_ROBIN, aio)
    try:
        codes = [c.call() for _ in range(300)]
    finally:
        c.close()
    ok = codes.count(OK)
    print(f"round_robin, one backend of three at level 3: {ok} of 300 OK")
    assert c.fast_fails() == 0
    assert ok >= 0.6 * len(codes)
    assert set(codes) <= {OK, SHED}


@AIO
def test_weighted_round_robin_one_hot_backend_hardly_costs_anything(
    backends: list[PressureServer], aio: str
) -> None:
    levels(backends, 3, 0, 0)
    c = caller(backends, WEIGHTED, aio)
    try:
        warm_until = time.monotonic() + 1.0
        while time.monotonic() < warm_until:  # weights from the first reports (every 100 ms)
            c.call(CORE)
        codes = [c.call() for _ in range(300)]
    finally:
        c.close()
    ok = codes.count(OK)
    shed_at = [i for i, code in enumerate(codes) if code != OK]
    print(f"weighted_round_robin, one backend of three at level 3: {ok} of 300 OK {shed_at}")
    assert ok >= 0.95 * len(codes)
    assert c.fast_fails() == 0


@AIO
def test_all_backends_hot_one_probe_per_window_then_recovery(
    backends: list[PressureServer], aio: str
) -> None:
    levels(backends, 3, 3, 3)
    c = caller(backends, ROUND_ROBIN, aio)
    try:
        assert c.guard.peers.blocked(c.target)  # each has reported level 3
        for backend in backends:
            backend.arrivals()
        stop = threading.Event()
        start = time.monotonic()
        codes = []
        while time.monotonic() - start < 2.0:
            codes.append(c.call())
            stop.wait(0.002)  # pacing: a few hundred calls, not a busy loop
        elapsed = time.monotonic() - start
        arrived = [backend.arrivals() for backend in backends]
        window = PUSHBACK_MS / 1000
        most = math.floor(elapsed / window) + 1  # one probe per window for the whole channel
        counts = [len(times) for times in arrived]
        print(f"all at level 3, {len(codes)} calls in {elapsed:.2f} s: arrivals {counts}")
        assert 1 <= sum(counts) <= most, counts
        assert codes.count(OK) == 0 and c.fast_fails() >= len(codes) - sum(counts)
        # One backend recovers: a probe finds it within a few windows, and calls flow again.
        backends[1].set_level(0)
        deadline = time.monotonic() + 10
        while c.call() != OK:
            assert time.monotonic() < deadline, "never noticed the recovered backend"
            stop.wait(0.01)
        assert not c.guard.peers.blocked(c.target)
    finally:
        c.close()
        levels(backends, 0, 0, 0)
