"""A raw-bytes echo service in all four arities, served sync, aio, or aio with sync handlers,
on 127.0.0.1 — the real grpcio server and channel, no mocks."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
from memcontract.interceptors import (
    add_pressure_services,
    aio_server_interceptor,
    server_interceptor,
    wrap_server,
)

from memcontract import peer_pressure
from memcontract.guard import Guard
from memcontract.trust import TrustPolicy

SERVICE = "test.Echo"
ARITIES = ("UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream")
CORE = "/test.Echo/Core"  # a unary-unary core method (the contract's core_methods glob matches it)


class Calls:
    """What the handlers saw: how many ran, and the caller pressure each one read."""

    def __init__(self) -> None:
        self.ran = 0
        self.peers: list[Any] = []
        self.lock = threading.Lock()

    def saw(self) -> None:
        with self.lock:
            self.ran += 1
            self.peers.append(peer_pressure())


def _outcome(mode: bytes, context: Any) -> bytes:
    """Sync handler body: what the request asks for."""
    if mode == b"error":
        raise RuntimeError("handler failed")
    if mode == b"abort":
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
    if mode == b"trailers":
        context.set_trailing_metadata((("x-app", "kept"), ("x-app-bin", b"\x00\x01")))
    if mode == b"trailers-abort":
        context.set_trailing_metadata((("x-app", "kept"),))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "after trailers")
    return b"echo:" + mode


async def _aio_outcome(mode: bytes, context: Any) -> bytes:
    if mode == b"error":
        raise RuntimeError("handler failed")
    if mode == b"abort":
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
    if mode == b"trailers":
        context.set_trailing_metadata((("x-app", "kept"), ("x-app-bin", b"\x00\x01")))
    if mode == b"trailers-abort":
        context.set_trailing_metadata((("x-app", "kept"),))
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "after trailers")
    return b"echo:" + mode


def sync_handlers(calls: Calls) -> dict[str, grpc.RpcMethodHandler]:
    def unary_unary(request: bytes, context: Any) -> bytes:
        calls.saw()
        return _outcome(request, context)

    # Sync streaming handlers fail before their first message: grpcio's aio server itself
    # races when a sync generator aborts after yielding (GRPC_CALL_ERROR_TOO_MANY_OPERATIONS,
    # reproduced without memcontract), so the matrix does not exercise that grpcio bug.
    def unary_stream(request: bytes, context: Any) -> Iterator[bytes]:
        calls.saw()
        last = _outcome(request, context)
        yield b"first"
        yield last

    def stream_unary(requests: Iterator[bytes], context: Any) -> bytes:
        calls.saw()
        return _outcome(b"".join(requests), context)

    def stream_stream(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        calls.saw()
        last = _outcome(b"".join(requests), context)
        yield b"first"
        yield last

    return {
        "UnaryUnary": grpc.unary_unary_rpc_method_handler(unary_unary),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary),
        "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream),
        "Core": grpc.unary_unary_rpc_method_handler(unary_unary),
    }


def aio_handlers(calls: Calls) -> dict[str, grpc.RpcMethodHandler]:
    async def unary_unary(request: bytes, context: Any) -> bytes:
        calls.saw()
        return await _aio_outcome(request, context)

    async def unary_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        calls.saw()
        yield b"first"
        yield await _aio_outcome(request, context)

    async def stream_unary(requests: AsyncIterator[bytes], context: Any) -> bytes:
        calls.saw()
        return await _aio_outcome(b"".join([r async for r in requests]), context)

    async def stream_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        calls.saw()
        mode = b"".join([r async for r in requests])
        yield b"first"
        yield await _aio_outcome(mode, context)

    return {
        "UnaryUnary": grpc.unary_unary_rpc_method_handler(unary_unary),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary),
        "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream),
        "Core": grpc.unary_unary_rpc_method_handler(unary_unary),
    }


@contextlib.contextmanager
def serve(
    kind: str,
    guard: Guard,
    calls: Calls,
    *,
    wrapped: bool = False,
    trust: TrustPolicy | None = None,
    services: bool = False,
) -> Iterator[str]:
    """Serve the echo service; ``kind`` is "sync", "aio" or "aio-sync" (sync handlers on aio).

    ``services``: also the pressure services (``add_pressure_services``).
    """
    if kind == "sync":
        handlers = sync_handlers(calls)
        if wrapped:
            server = wrap_server(grpc.server(futures.ThreadPoolExecutor(8)), guard, trust=trust)
        else:
            server = grpc.server(
                futures.ThreadPoolExecutor(8), interceptors=[server_interceptor(guard, trust=trust)]
            )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        if services:
            add_pressure_services(server, guard)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.stop(0).wait(5)
        return
    handlers = sync_handlers(calls) if kind == "aio-sync" else aio_handlers(calls)
    with AioServerThread(
        guard, handlers, wrapped=wrapped, trust=trust, services=services
    ) as address:
        yield address


class DaemonExecutor(futures.Executor):
    """The aio server's pool for sync handlers, on daemon threads.

    grpcio runs a sync streaming handler on an aio server as a producer thread that blocks on
    a one-slot queue; when the call ends first, that thread can stay blocked for good, and a
    ``ThreadPoolExecutor`` would then hold the test process open at exit (grpcio's own, seen
    without memcontract). Daemon threads let the process exit.
    """

    def __init__(self, workers: int = 8) -> None:
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(workers):
            threading.Thread(target=self._run, daemon=True).start()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        future: futures.Future[Any] = futures.Future()
        self._work.put((future, fn, args, kwargs))
        return future

    def _run(self) -> None:
        while True:
            future, fn, args, kwargs = self._work.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as err:
                future.set_exception(err)


class AioServerThread:
    """A grpc.aio server on its own event loop in a thread, for sync test code."""

    def __init__(
        self,
        guard: Guard,
        handlers: dict[str, grpc.RpcMethodHandler],
        *,
        wrapped: bool,
        trust: TrustPolicy | None = None,
        services: bool = False,
    ) -> None:
        self.guard, self.handlers, self.wrapped, self.trust = guard, handlers, wrapped, trust
        self.services = services
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: Any = None

    async def _start(self) -> str:
        if self.wrapped:
            self.server = wrap_server(
                grpc.aio.server(migration_thread_pool=DaemonExecutor()),
                self.guard,
                trust=self.trust,
            )
        else:
            self.server = grpc.aio.server(
                migration_thread_pool=DaemonExecutor(),
                interceptors=[aio_server_interceptor(self.guard, trust=self.trust)],
            )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, self.handlers),)
        )
        if self.services:
            add_pressure_services(self.server, self.guard)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return f"127.0.0.1:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def call_sync(
    channel: grpc.Channel, arity: str, mode: bytes, *, timeout: float = 10, metadata: Any = None
) -> tuple[grpc.StatusCode, list[bytes], dict[str, Any]]:
    """Make one call of ``arity``; return (code, responses, trailers as a dict)."""
    method = f"/{SERVICE}/{arity}"
    responses: list[bytes] = []
    try:
        if arity in ("UnaryUnary", "Core"):
            reply, call = channel.unary_unary(method).with_call(
                mode, timeout=timeout, metadata=metadata
            )
            responses.append(reply)
        elif arity == "StreamUnary":
            reply, call = channel.stream_unary(method).with_call(
                iter([mode]), timeout=timeout, metadata=metadata
            )
            responses.append(reply)
        else:
            request: Any = mode if arity == "UnaryStream" else iter([mode])
            stream = getattr(
                channel, "unary_stream" if arity == "UnaryStream" else "stream_stream"
            )(method)
            call = stream(request, timeout=timeout, metadata=metadata)
            responses.extend(call)
        return call.code(), responses, dict(call.trailing_metadata() or ())
    except grpc.RpcError as err:
        return err.code(), responses, dict(err.trailing_metadata() or ())  # type: ignore[attr-defined]


async def call_aio(
    channel: grpc.aio.Channel, arity: str, mode: bytes, *, timeout: float = 10, metadata: Any = None
) -> tuple[grpc.StatusCode, list[bytes], dict[str, Any]]:
    """The aio twin of :func:`call_sync`."""
    method = f"/{SERVICE}/{arity}"
    responses: list[bytes] = []
    call: Any = None
    try:
        if arity in ("UnaryUnary", "Core"):
            call = channel.unary_unary(method)(mode, timeout=timeout, metadata=metadata)
            responses.append(await call)
        elif arity == "StreamUnary":
            call = channel.stream_unary(method)(iter([mode]), timeout=timeout, metadata=metadata)
            responses.append(await call)
        else:
            request: Any = mode if arity == "UnaryStream" else iter([mode])
            stream = getattr(
                channel, "unary_stream" if arity == "UnaryStream" else "stream_stream"
            )(method)
            call = stream(request, timeout=timeout, metadata=metadata)
            async for item in call:
                responses.append(item)
        return await call.code(), responses, dict(await call.trailing_metadata() or ())
    except grpc.aio.AioRpcError as err:
        return err.code(), responses, dict(err.trailing_metadata() or ())
