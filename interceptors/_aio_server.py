"""The grpc.aio server side: as the sync side, for coroutine, async-generator and sync handlers."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from memcontract.caller import bind_caller_pressure, unbind_caller_pressure
from memcontract.guard import Guard, Snapshot
from memcontract.trust import TrustPolicy

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


def make_aio_behavior(
    side: ServerSide, method: str, peer_bound: bool = False
) -> Callable[[Any, bool], Any]:
    """A wrapper factory for the behaviors of ``method`` on an aio server, by their kind.

    ``peer_bound``: the interceptor has already bound the caller's pressure in the call's task
    (see :meth:`AioMemoryServerInterceptor.intercept_service`), so coroutine and async-generator
    behaviors need not read the metadata again.
    """
    sync_wrap = make_sync_behavior(side, method)

    def wrap(behavior: Any, response_streaming: bool) -> Any:
        if inspect.isasyncgenfunction(behavior):
            return _async_generator(side, method, behavior, peer_bound)
        if inspect.iscoroutinefunction(behavior):
            return _coroutine(side, method, behavior, peer_bound)
        return sync_wrap(behavior, response_streaming)  # sync handlers run in aio's executor

    return wrap


def runs_in_task(handler: grpc.RpcMethodHandler) -> bool:
    """Whether the handler's behavior runs in the call's own task (not in aio's executor)."""
    behavior = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


async def _shed(context: Any, snapshot: Snapshot) -> None:
    # aio's abort sends the status at once: the trailers go first
    context.set_trailing_metadata(snapshot.shed_trailers)
    await context.abort(SHED_CODE, snapshot.shed_details)


def _coroutine(side: ServerSide, method: str, behavior: Any, peer_bound: bool) -> Any:
    guard = side.guard
    count_call, count_error = side.count_call, side.count_error

    async def unary(request: Any, context: Any) -> Any:
        count_call()
        snapshot = guard.snapshot
        if snapshot.critical and side.sheds(snapshot, method):
            await _shed(context, snapshot)
        ctx = AioContext(context, side.trailers(context, snapshot))
        token = None
        try:
            if peer_bound:
                return await behavior(request, ctx)
            peer = side.caller_pressure(context.invocation_metadata(), context)
            if peer is None:  # each aio call runs in its own task: nothing to undo
                return await behavior(request, ctx)
            token = bind_caller_pressure(peer)
            return await behavior(request, ctx)
        except BaseException:  # abort() raises too: every failed call is counted
            count_error()
            raise
        finally:
            if token is not None:
                unbind_caller_pressure(token)

    return unary


def _async_generator(side: ServerSide, method: str, behavior: Any, peer_bound: bool) -> Any:
    guard = side.guard
    count_call, count_error = side.count_call, side.count_error

    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        count_call()
        snapshot = guard.snapshot
        if snapshot.critical and side.sheds(snapshot, method):
            await _shed(context, snapshot)
        ctx = AioContext(context, snapshot.trailing_metadata)  # a stream: always (see _server)
        token = None
        try:
            if not peer_bound:
                metadata = context.invocation_metadata()
                token = bind_caller_pressure(side.caller_pressure(metadata, context))
            async for item in behavior(request, ctx):
                yield item
        except BaseException:
            count_error()
            raise
        finally:
            if token is not None:
                unbind_caller_pressure(token)

    return stream


class AioMemoryServerInterceptor(grpc.aio.ServerInterceptor):
    """grpc.aio server interceptor: see :func:`memcontract.interceptors.aio_server_interceptor`."""

    def __init__(self, guard: Guard, trust: TrustPolicy | None = None) -> None:
        self.side = ServerSide(guard, trust)
        # Per method: the wrapped handler, and whether the caller's pressure is bound here.
        self._cache: HandlerCache[tuple[grpc.RpcMethodHandler, bool]] = HandlerCache()

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """``handler`` with every behavior wrapped (serializers and arity kept); the wrappers
        read the caller's metadata themselves (for ``wrap_server``, where no interceptor runs)."""
        return replace_behavior(handler, make_aio_behavior(self.side, method))

    def _wrap_binding_here(
        self, handler: grpc.RpcMethodHandler, method: str
    ) -> tuple[grpc.RpcMethodHandler, bool]:
        # Behaviors that run in the call's own task get the caller's pressure bound in
        # intercept_service, from the handler call details: aio converts the invocation
        # metadata to Python once for those, and again on every context.invocation_metadata().
        # A trust policy other than "all" needs the peer's address, which only the servicer
        # context has; sync behaviors run in aio's executor, which the binding does not reach.
        binds_here = self.side.trust.trust_all and runs_in_task(handler)
        wrapped = replace_behavior(handler, make_aio_behavior(self.side, method, binds_here))
        return wrapped, binds_here

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
        wrapped, binds_here = self._cache.get(handler, method, self._wrap_binding_here)
        if binds_here:
            # This runs in the call's own task, as the behavior will: the binding is the
            # call's alone and ends with its task.
            metadata = handler_call_details.invocation_metadata
            bind_caller_pressure(self.side.caller_pressure(metadata, None))
        return wrapped
