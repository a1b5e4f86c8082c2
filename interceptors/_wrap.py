"""Registration-time wrapping: handlers are wrapped once when services are added, so a call
pays no interceptor pipeline and no handler lookup, only the behavior wrapper itself; an aio
channel's methods are wrapped once when a stub is made, so a call pays no interceptor task."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from memcontract.callees import CalleeTable
from memcontract.guard import Guard
from memcontract.trust import TrustPolicy

from ._aio_client import AioFastFailure, AioRecorder, fast_failure_error
from ._aio_server import AioMemoryServerInterceptor
from ._client import FastFailure, MemoryClientInterceptor
from ._server import MemoryServerInterceptor
from ._shared import ClientSide, HandlerCache, fast_fail_details


class _WrappedGeneric(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, wrap: Any) -> None:
        self._inner = inner
        self._wrap = wrap
        self._cache: HandlerCache[grpc.RpcMethodHandler] = HandlerCache()

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        return self._cache.get(handler, handler_call_details.method, self._wrap)


class WrappedServer:
    """A server whose services get memcontract's behavior wrappers as they are added.

    Everything else is the wrapped server's own (``start``, ``add_insecure_port``, ...).
    """

    def __init__(self, server: Any, wrap: Any) -> None:
        self._server = server
        self._wrap = wrap

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Any) -> None:
        """Add handlers; each handler they return is wrapped once."""
        self._server.add_generic_rpc_handlers(
            tuple(_WrappedGeneric(h, self._wrap) for h in generic_rpc_handlers)
        )

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        """Add a service's handlers, each wrapped now (what generated ``add_*_to_server`` calls)."""
        wrapped = {
            name: self._wrap(handler, f"/{service_name}/{name}")
            for name, handler in method_handlers.items()
        }
        self._server.add_registered_method_handlers(service_name, wrapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


def wrap_server(server: Any, guard: Guard, *, trust: TrustPolicy | None = None) -> Any:
    """Wrap a grpcio or grpc.aio server so services added through it are guarded.

    The opt-in alternative to the interceptors, with the same behavior and less per-call work::

        server = wrap_server(grpc.server(executor), guard)
        inventory_pb2_grpc.add_InventoryServicer_to_server(Inventory(), server)
    """
    is_aio = isinstance(server, grpc.aio.Server)
    interceptor = (
        AioMemoryServerInterceptor(guard, trust)
        if is_aio
        else MemoryServerInterceptor(guard, trust)
    )
    return WrappedServer(server, interceptor.wrap)


class _GuardedAio:
    """One method of a wrapped aio channel, any arity: our keys added to each call, the
    callee's read when it ends (grpc.aio's interceptors run each call in a task of its own;
    this runs in the caller's, before the call is made)."""

    __slots__ = ("_inner", "_method", "_record", "_side")

    def __init__(self, inner: Any, method: str, side: ClientSide) -> None:
        self._inner = inner
        self._method = method
        self._record = AioRecorder(side, core=side.is_core(method))
        self._side = side

    def __call__(
        self,
        request: Any = None,
        timeout: Any = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Any = None,
        compression: Any = None,
    ) -> Any:
        # grpc.aio's own order (its stream-request methods take these by position too); passed
        # on by keyword, which every arity takes.
        side = self._side
        if side.blocked_until and side.fails_fast(self._method):
            return AioFastFailure(fast_failure_error(side), timeout)
        call = self._inner(
            request,
            timeout=timeout,
            metadata=side.outgoing(metadata) if metadata else side.ours(),
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )
        call.add_done_callback(self._record)
        return call


class _WrappedChannelMethods:
    """The four multicallable factories of a wrapped channel, each the channel's own, guarded
    by :meth:`_guarded`; everything else is the channel's own."""

    _channel: Any

    def _guarded(self, kind: str, method: str, args: Any, kwargs: Any) -> Any:
        raise NotImplementedError

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The channel's multicallable for ``method``, guarded."""
        return self._guarded("unary_unary", method, args, kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The channel's multicallable for ``method``, guarded."""
        return self._guarded("unary_stream", method, args, kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The channel's multicallable for ``method``, guarded."""
        return self._guarded("stream_unary", method, args, kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The channel's multicallable for ``method``, guarded."""
        return self._guarded("stream_stream", method, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)


class WrappedAioChannel(_WrappedChannelMethods):
    """A grpc.aio channel whose multicallables are guarded as they are made (what generated
    stubs do once, in their constructor). Everything else is the channel's own."""

    def __init__(self, channel: grpc.aio.Channel, side: ClientSide) -> None:
        self._channel = channel
        self.side = side  # the ClientSide (its peer table, its target)

    def _guarded(self, kind: str, method: str, args: Any, kwargs: Any) -> Any:
        inner = getattr(self._channel, kind)(method, *args, **kwargs)
        return _GuardedAio(inner, method, self.side)

    async def __aenter__(self) -> WrappedAioChannel:
        await self._channel.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._channel.__aexit__(*exc)


class _GuardedSync:
    """One method of a wrapped grpcio channel: our keys added to each call, the callee's read
    when it ends, without grpcio's interceptor pipeline (a call details object, a continuation
    and an outcome per call)."""

    __slots__ = ("_inner", "_method", "_record", "_side")

    def __init__(self, inner: Any, method: str, interceptor: MemoryClientInterceptor) -> None:
        side = interceptor.side
        self._inner = inner
        self._method = method
        self._side = side
        self._record = interceptor._record_core if side.is_core(method) else interceptor._record

    def _failure(self) -> FastFailure | None:
        """The fast failure of a call to send now, or None."""
        side = self._side
        if side.blocked_until and side.fails_fast(self._method):
            return FastFailure(fast_fail_details(side.target), side.pushback_ms())
        return None

    def _ours(self, metadata: Any) -> Any:
        side = self._side
        return side.outgoing(metadata) if metadata else side.ours()

    def _started(
        self, start: Any, request: Any, timeout: Any, metadata: Any, options: Any, named: Any
    ) -> Any:
        """A call started by ``start`` (a future, a response stream), read when it ends; the
        fast failure instead while the callee sheds."""
        failure = self._failure()
        if failure is not None:
            return failure
        call = start(request, timeout, self._ours(metadata), *options, **named)
        call.add_done_callback(self._record)
        return call


# The methods below take grpcio's own arguments: (request, timeout, metadata, credentials,
# wait_for_ready, compression), by position or by name; all but metadata pass through as given.


class _GuardedUnaryResponse(_GuardedSync):
    """``unary_unary`` and ``stream_unary``: ``__call__``, ``with_call`` and ``future``."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.with_call(*args, **kwargs)[0]

    def with_call(
        self, request: Any, timeout: Any = None, metadata: Any = None, *options: Any, **named: Any
    ) -> tuple[Any, Any]:
        failure = self._failure()
        if failure is not None:
            raise failure
        try:
            response, call = self._inner.with_call(
                request, timeout, self._ours(metadata), *options, **named
            )
        except grpc.RpcError as error:  # a failed call is an answer too
            self._record(error)
            raise
        self._record(call)
        return response, call

    def future(
        self, request: Any, timeout: Any = None, metadata: Any = None, *options: Any, **named: Any
    ) -> Any:
        return self._started(self._inner.future, request, timeout, metadata, options, named)


class _GuardedStreamResponse(_GuardedSync):
    """``unary_stream`` and ``stream_stream``: the response iterator, read when it ends."""

    __slots__ = ()

    def __call__(
        self, request: Any, timeout: Any = None, metadata: Any = None, *options: Any, **named: Any
    ) -> Any:
        return self._started(self._inner, request, timeout, metadata, options, named)


class WrappedChannel(_WrappedChannelMethods):
    """A grpcio channel whose multicallables are guarded as they are made (what generated stubs
    do once, in their constructor). Everything else is the channel's own."""

    def __init__(self, channel: grpc.Channel, interceptor: MemoryClientInterceptor) -> None:
        self._channel = channel
        self._interceptor = interceptor
        self.side = interceptor.side  # the ClientSide (its peer table, its target)

    def _guarded(self, kind: str, method: str, args: Any, kwargs: Any) -> Any:
        inner = getattr(self._channel, kind)(method, *args, **kwargs)
        guarded = _GuardedStreamResponse if kind.endswith("_stream") else _GuardedUnaryResponse
        return guarded(inner, method, self._interceptor)

    def __enter__(self) -> WrappedChannel:
        self._channel.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._channel.__exit__(*exc)


def wrap_channel(
    channel: Any,
    guard: Guard,
    target: str | None = None,
    *,
    peers: CalleeTable | None = None,
    trust: TrustPolicy | None = None,
) -> Any:
    """Guard a grpcio or grpc.aio channel: what the client interceptors do, for one channel.

    The opt-in alternative to the client interceptors with less per-call work: grpc.aio runs
    an intercepted call in a task of its own and grpcio builds a pipeline per call; a wrapped
    channel's calls get neither::

        channel = wrap_channel(grpc.aio.insecure_channel("127.0.0.1:50051"), guard)
        stub = inventory_pb2_grpc.InventoryStub(channel)

    A call failed locally is an :class:`AioFastFailure` on grpc.aio (awaiting it, or reading
    it, raises the ``RESOURCE_EXHAUSTED`` error), a :class:`FastFailure` on grpcio, as with the
    interceptors (raised by a unary call, returned by ``future`` and streaming calls). The
    arguments are :func:`client_interceptor`'s.
    """
    if isinstance(channel, grpc.aio.Channel):
        return WrappedAioChannel(channel, ClientSide(guard, target, peers, trust))
    return WrappedChannel(channel, MemoryClientInterceptor(guard, target, peers, trust))
