"""The grpc.aio client side: one interceptor class per arity (aio registers a class once)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import grpc.aio

from memcontract import wire
from memcontract.callees import CalleeTable
from memcontract.guard import Guard
from memcontract.trust import TrustPolicy

from ._shared import SHED_CODE, ClientSide, fast_fail_details, new_tuple


class AioRecorder:
    """Reads a finished aio call's trailers into the side's peer table (a done callback);
    ``core``: for core calls (see :meth:`ClientSide.record`)."""

    def __init__(self, side: ClientSide, core: bool = False) -> None:
        self.side = side
        self.core = core
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, call: Any) -> None:
        # A finished aio call holds its status already; reading it is a plain attribute read.
        # (The public accessor is a coroutine, which a done callback cannot await.)
        cython_call = getattr(call, "_cython_call", None)
        side = self.side
        if side.learns_target:
            side.learn_target(getattr(getattr(cython_call, "_channel", None), "target", None))
        status = getattr(cython_call, "_status", None)
        if status is not None:
            side.record(status.trailing_metadata(), self.core)
            return
        task = asyncio.get_running_loop().create_task(self._record_async(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record_async(self, call: Any) -> None:
        try:
            trailers = await call.trailing_metadata()
        except Exception:
            return
        self.side.record(tuple(trailers or ()), self.core)


def fast_failure_error(side: ClientSide) -> grpc.aio.AioRpcError:
    """The error of a call failed locally: ``RESOURCE_EXHAUSTED``, the window as pushback."""
    return grpc.aio.AioRpcError(
        SHED_CODE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((wire.RETRY_PUSHBACK, str(side.pushback_ms()))),
        details=fast_fail_details(side.target),
    )


class AioFastFailure(
    grpc.aio.UnaryUnaryCall,
    grpc.aio.UnaryStreamCall,
    grpc.aio.StreamUnaryCall,
    grpc.aio.StreamStreamCall,
):
    """What a wrapped aio channel returns for a call failed locally (any arity): a finished
    call, as grpc.aio's own is once it failed: its result, response stream and reads raise the
    ``RESOURCE_EXHAUSTED`` error an intercepted call would, a write raises
    ``asyncio.InvalidStateError``; nothing is sent."""

    def __init__(self, error: grpc.aio.AioRpcError, timeout: float | None = None) -> None:
        self._error = error
        self._deadline = None if timeout is None else time.monotonic() + timeout

    async def _raise(self) -> Any:
        raise self._error

    def __await__(self) -> Any:
        return self._raise().__await__()

    def __aiter__(self) -> AioFastFailure:
        return self

    async def __anext__(self) -> Any:
        raise self._error

    async def read(self) -> Any:
        raise self._error

    async def write(self, request: Any) -> None:
        raise asyncio.InvalidStateError("RPC already finished.")  # grpc.aio's own words

    async def done_writing(self) -> None:
        return None

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return self._error.initial_metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return self._error.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        return self._error.code()

    async def details(self) -> str:
        return self._error.details() or ""

    async def wait_for_connection(self) -> None:
        raise self._error

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def cancel(self) -> bool:
        return False

    def add_done_callback(self, callback: Any) -> None:
        callback(self)


class _AioClientBase:
    def __init__(self, side: ClientSide) -> None:
        self.side = side
        self._record = AioRecorder(side)
        self._record_core = AioRecorder(side, core=True)

    async def _call(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        # One body for the four arities, bound under each arity's name below: a call costs one
        # coroutine frame here (grpcio passes the request or request iterator in one place).
        side = self.side
        details = client_call_details
        if side.blocked_until and side.fails_fast(details.method):
            raise fast_failure_error(side)
        # A plain tuple of pairs: aio's call takes any sequence, and building a
        # grpc.aio.Metadata per call costs more than the rest of this interceptor.
        new_details = new_tuple(
            grpc.aio.ClientCallDetails,
            (
                details.method,
                details.timeout,
                side.outgoing(details.metadata),
                details.credentials,
                details.wait_for_ready,
            ),
        )
        call = await continuation(new_details, request)
        try:
            core = side.is_core(details.method)
            call.add_done_callback(self._record_core if core else self._record)
        except NotImplementedError:  # an interceptor below answered without a real call
            return call
        return call


class AioUnaryUnary(_AioClientBase, grpc.aio.UnaryUnaryClientInterceptor):
    """aio unary-unary client interceptor."""

    intercept_unary_unary = _AioClientBase._call


class AioUnaryStream(_AioClientBase, grpc.aio.UnaryStreamClientInterceptor):
    """aio unary-stream client interceptor."""

    intercept_unary_stream = _AioClientBase._call


class AioStreamUnary(_AioClientBase, grpc.aio.StreamUnaryClientInterceptor):
    """aio stream-unary client interceptor."""

    intercept_stream_unary = _AioClientBase._call


class AioStreamStream(_AioClientBase, grpc.aio.StreamStreamClientInterceptor):
    """aio stream-stream client interceptor."""

    intercept_stream_stream = _AioClientBase._call


def make_aio_client_interceptors(
    guard: Guard,
    target: str | None = None,
    peers: CalleeTable | None = None,
    trust: TrustPolicy | None = None,
) -> list[grpc.aio.ClientInterceptor]:
    """The four aio client interceptors, sharing one :class:`ClientSide`."""
    side = ClientSide(guard, target, peers, trust)
    return [AioUnaryUnary(side), AioUnaryStream(side), AioStreamUnary(side), AioStreamStream(side)]
