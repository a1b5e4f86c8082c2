"""The grpcio (sync) server side: shed at level 3, expose the caller's pressure, add ours."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from memcontract.caller import bind_caller_pressure, unbind_caller_pressure
from memcontract.guard import Guard, Snapshot
from memcontract.pressure import Pressure
from memcontract.trust import TrustPolicy

from ._shared import (
    SHED_CODE,
    HandlerCache,
    MergedStatus,
    Metadata,
    ServerSide,
    merged,
    replace_behavior,
)


class SyncContext:
    """The handler's view of the servicer context: trailers it sets are merged with ours."""

    __slots__ = ("_context", "_ours")

    def __init__(self, context: Any, ours: Metadata) -> None:
        self._context = context
        self._ours = ours
        if ours:
            context.set_trailing_metadata(ours)

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        """Set the handler's trailers; memcontract's are kept beside them."""
        self._context.set_trailing_metadata(merged(trailing_metadata, self._ours))

    def abort_with_status(self, status: Any) -> Any:
        """Abort with ``status``, its trailers merged with memcontract's."""
        return self._context.abort_with_status(MergedStatus(status, self._ours))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def make_sync_behavior(
    side: ServerSide, method: str, *, merge_at_end: bool = False
) -> Callable[[Any, bool], Any]:
    """A wrapper factory for sync behaviors of ``method`` (also used on aio servers).

    ``merge_at_end``: a grpcio sync server sends the status only after the behavior returns or
    raises (``abort`` raises), so a unary behavior gets the servicer context itself and the
    handler's trailers are merged with ours as it ends. On aio, ``abort`` sends at once: there
    the handler gets a :class:`SyncContext` that merges as trailers are set.
    """

    count_call, count_error = side.count_call, side.count_error

    def wrap(behavior: Any, response_streaming: bool) -> Any:
        def start(request: Any, context: Any) -> tuple[Pressure | None, SyncContext]:
            count_call()
            peer, snapshot, shed = side.admit(method, context)
            if shed:
                _shed(context, snapshot)
            # A streaming response carries the keys even while quiet (its trailers come once
            # per stream) and tells no connection: the unary call after grpcurl's reflection
            # stream still carries them.
            return peer, SyncContext(context, snapshot.trailing_metadata)

        if response_streaming:

            def stream(request: Any, context: Any) -> Iterator[Any]:
                # A generator from the first line: the shed check runs on the first pull, where
                # grpcio (sync and aio alike) expects a streaming handler to fail.
                peer, ctx = start(request, context)
                try:
                    yield from _iterate(behavior, request, ctx, peer)
                except BaseException:
                    count_error()
                    raise

            return stream

        def unary(request: Any, context: Any) -> Any:
            count_call()
            peer, snapshot, shed = side.admit(method, context)
            if shed:
                _shed(context, snapshot)
            ours = side.trailers(context, snapshot)
            if merge_at_end:
                if ours:
                    context.set_trailing_metadata(ours)
                ctx = context
            else:
                ctx = SyncContext(context, ours)
            token = None if peer is None else bind_caller_pressure(peer)
            try:
                return behavior(request, ctx)
            except BaseException:  # abort() raises too: every failed call is counted
                count_error()
                raise
            finally:
                if token is not None:
                    unbind_caller_pressure(token)
                if merge_at_end and ours:
                    theirs = context.trailing_metadata()
                    if theirs is not ours:  # the handler set its own (or aborted with them)
                        context.set_trailing_metadata(merged(theirs, ours))

        return unary

    return wrap


def _shed(context: Any, snapshot: Snapshot) -> None:
    context.set_trailing_metadata(snapshot.shed_trailers)
    context.abort(SHED_CODE, snapshot.shed_details)  # raises


def _iterate(behavior: Any, request: Any, context: Any, peer: Pressure | None) -> Iterator[Any]:
    # The caller's pressure is bound around each step, not across yields: the server may pull
    # successive items on different threads (aio runs sync generators in an executor).
    token = bind_caller_pressure(peer)
    try:
        responses = iter(behavior(request, context))
    finally:
        unbind_caller_pressure(token)
    while True:
        token = bind_caller_pressure(peer)
        try:
            item = next(responses)
        except StopIteration:
            return
        finally:
            unbind_caller_pressure(token)
        yield item


class MemoryServerInterceptor(grpc.ServerInterceptor):
    """grpcio server interceptor: see :func:`memcontract.interceptors.server_interceptor`."""

    def __init__(self, guard: Guard, trust: TrustPolicy | None = None) -> None:
        self.side = ServerSide(guard, trust)
        self._cache: HandlerCache[grpc.RpcMethodHandler] = HandlerCache()

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """``handler`` with every behavior wrapped (serializers and arity kept)."""
        return replace_behavior(handler, make_sync_behavior(self.side, method, merge_at_end=True))

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return self._cache.get(handler, handler_call_details.method, self.wrap)
