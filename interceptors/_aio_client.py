"""The grpc.aio client side: one interceptor class per arity (aio registers a class once)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import grpc.aio

from memcontract import wire
from memcontract.callees import CalleeTable
from memcontract.guard import Guard
from memcontract.trust import TrustPolicy

from ._shared import SHED_CODE, ClientSide, fast_fail_details, new_tuple

log = logging.getLogger("memcontract.interceptors")


class _AioClientBase:
    def __init__(self, side: ClientSide) -> None:
        self.side = side
        self._tasks: set[asyncio.Task[None]] = set()

    async def _call(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        # One body for the four arities, bound under each arity's name below: a call costs one
        # coroutine frame here (grpcio passes the request or request iterator in one place).
        side = self.side
        details = client_call_details
        if side.blocked_until and side.fails_fast(details.method):
            pushback = str(side.pushback_ms())
            raise grpc.aio.AioRpcError(
                SHED_CODE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata((wire.RETRY_PUSHBACK, pushback)),
                details=fast_fail_details(side.target),
            )
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
            call.add_done_callback(self._record)
        except NotImplementedError:  # an interceptor below answered without a real call
            return call
        return call

    def _record(self, call: Any) -> None:
        # A finished aio call holds its status already; reading it is a plain attribute read.
        # (The public accessor is a coroutine, which a done callback cannot await.)
        cython_call = getattr(call, "_cython_call", None)
        side = self.side
        if side.learns_target:
            side.learn_target(getattr(getattr(cython_call, "_channel", None), "target", None))
        status = getattr(cython_call, "_status", None)
        if status is not None:
            side.record(status.trailing_metadata())
            return
        task = asyncio.get_running_loop().create_task(self._record_async(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record_async(self, call: Any) -> None:
        try:
            trailers = await call.trailing_metadata()
        except Exception:
            return
        self.side.record(tuple(trailers or ()))


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
