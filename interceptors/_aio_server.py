"""The grpc.aio server side: as the sync side, for coroutine, async-generator and sync handlers."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from memcontract.guard import Guard, Snapshot
from memcontract.peer import bind_peer_pressure, unbind_peer_pressure
from memcontract.peers import TrustPolicy

from ._server import SyncContext, make_sync_behavior
from ._shared import (
    SHED_CODE,
    HandlerCache,
    ServerSide,
    merged,
    replace_behavior,
)


class AioContext(SyncContext):
    """The aio handler's view of the context. ``abort`` sends at once in aio, so trailers the
    handler sets (or passes to ``abort``) are merged with ours when set, not at the end."""

    __slots__ = ()

    def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> Any:
        """Abort the call; trailers passed here are merged with memcontract's."""
        if trailing_metadata:
            trailing_metadata = merged(trailing_metadata, self._ours)
        return self._context.abort(code, details, trailing_metadata)


def make_aio_behavior(side: ServerSide, method: str) -> Callable[[Any, bool], Any]:
    """A wrapper factory for the behaviors of ``method`` on an aio server, by their kind."""
    sync_wrap = make_sync_behavior(side, method)

    def wrap(behavior: Any, response_streaming: bool) -> Any:
        if inspect.isasyncgenfunction(behavior):
            return _async_generator(side, method, behavior)
        if inspect.iscoroutinefunction(behavior):
            return _coroutine(side, method, behavior)
        return sync_wrap(behavior, response_streaming)  # sync handlers run in aio's executor

    return wrap


async def _shed(context: Any, snapshot: Snapshot) -> None:
    # aio's abort sends the status at once: the trailers go first
    context.set_trailing_metadata(snapshot.shed_trailers)
    await context.abort(SHED_CODE, snapshot.shed_details)


def _coroutine(side: ServerSide, method: str, behavior: Any) -> Any:
    async def unary(request: Any, context: Any) -> Any:
        peer, snapshot, shed = side.admit(method, context)
        if shed:
            await _shed(context, snapshot)
        ctx = AioContext(context, snapshot.trailing_metadata)
        if peer is None:  # each aio call runs in its own task: nothing to bind
            return await behavior(request, ctx)
        token = bind_peer_pressure(peer)
        try:
            return await behavior(request, ctx)
        finally:
            unbind_peer_pressure(token)

    return unary


def _async_generator(side: ServerSide, method: str, behavior: Any) -> Any:
    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        peer, snapshot, shed = side.admit(method, context)
        if shed:
            await _shed(context, snapshot)
        ctx = AioContext(context, snapshot.trailing_metadata)
        token = bind_peer_pressure(peer)
        try:
            async for item in behavior(request, ctx):
                yield item
        finally:
            unbind_peer_pressure(token)

    return stream


class AioMemoryServerInterceptor(grpc.aio.ServerInterceptor):
    """grpc.aio server interceptor: see :func:`memcontract.interceptors.aio_server_interceptor`."""

    def __init__(self, guard: Guard, trust: TrustPolicy | None = None) -> None:
        self.side = ServerSide(guard, trust)
        self._cache = HandlerCache()

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """``handler`` with every behavior wrapped (serializers and arity kept)."""
        return replace_behavior(handler, make_aio_behavior(self.side, method))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode("utf-8", "replace")
        return self._cache.get(handler, method, self.wrap)
