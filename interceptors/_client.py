"""The grpcio (sync) client side: add our keys, read the callee's, fail fast at its level 3."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from memcontract import wire
from memcontract.callees import CalleeTable
from memcontract.guard import Guard
from memcontract.trust import TrustPolicy

from ._shared import SHED_CODE, ClientSide, fast_fail_details, new_tuple


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class FastFailure(grpc.RpcError, grpc.Call, grpc.Future):
    """The outcome of a call failed locally: ``RESOURCE_EXHAUSTED``, nothing sent.

    Behaves as a finished call (unary) and as a response iterator that raises (streaming).
    """

    def __init__(self, details: str, pushback_ms: int) -> None:
        super().__init__()
        self._details = details
        self._trailers = ((wire.RETRY_PUSHBACK, str(pushback_ms)),)

    def code(self) -> grpc.StatusCode:
        return SHED_CODE

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailers

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> FastFailure:
        return self

    def traceback(self, timeout: float | None = None) -> None:
        return None

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        raise self

    def __str__(self) -> str:
        return f"<FastFailure RESOURCE_EXHAUSTED: {self._details}>"


class MemoryClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """grpcio client interceptor: see :func:`memcontract.interceptors.client_interceptor`."""

    def __init__(
        self,
        guard: Guard,
        target: str | None = None,
        peers: CalleeTable | None = None,
        trust: TrustPolicy | None = None,
    ) -> None:
        self.side = ClientSide(guard, target, peers, trust)

    def _record(self, call: Any, core: bool = False) -> None:
        # Any call once done: a unary outcome (holding the finished call as ``_call``), an
        # error, a future or a stream.
        side = self.side
        if side.learns_target:
            state = getattr(getattr(call, "_call", call), "_state", None)
            side.learn_target(getattr(state, "target", None))
        try:
            trailers = call.trailing_metadata()
        except Exception:  # a failed or odd call object: nothing to read
            return
        side.record(trailers, core)

    def _record_core(self, call: Any) -> None:
        self._record(call, True)

    def _call(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        side = self.side
        details = client_call_details
        if side.blocked_until and side.fails_fast(details.method):
            return FastFailure(fast_fail_details(side.target), side.pushback_ms())
        metadata = details.metadata
        try:  # grpcio's own details carry all six fields; a user's may predate the last two
            wait_for_ready, compression = details.wait_for_ready, details.compression
        except AttributeError:
            wait_for_ready = getattr(details, "wait_for_ready", None)
            compression = getattr(details, "compression", None)
        call = continuation(
            new_tuple(
                _CallDetails,
                (
                    details.method,
                    details.timeout,
                    # A call with no metadata of its own (nearly all) sends the snapshot's tuple.
                    side.outgoing(metadata) if metadata else side.ours(),
                    details.credentials,
                    wait_for_ready,
                    compression,
                ),
            ),
            request,
        )
        # at once when the call is done already
        call.add_done_callback(self._record_core if side.is_core(details.method) else self._record)
        return call

    # One body for the four arities (grpcio passes the request or the request iterator in
    # the same place), bound under each name so a call costs no extra frame.
    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call
