"""The grpcio (sync) client side: add our keys, read the callee's, fail fast at its level 3."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from memcontract import wire
from memcontract.guard import Guard
from memcontract.peers import PeerTable, TrustPolicy

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
        peers: PeerTable | None = None,
        trust: TrustPolicy | None = None,
    ) -> None:
        self.side = ClientSide(guard, target, peers, trust)
        self._on_done = self._record

    def _record(self, call: Any) -> None:
        # A finished unary call (grpcio's outcome, holding the call as ``_call``) has its
        # trailers in its state already; grpcio's accessor would take the call's lock and build
        # a closure to wait for what is there. Other calls go through the public accessor.
        try:
            state = call._call._state
            trailers = state.trailing_metadata
        except AttributeError:
            state = getattr(call, "_state", None)  # an error, or a streaming call
            trailers = None
        side = self.side
        if side.learns_target:
            side.learn_target(getattr(state, "target", None))
        if trailers is None:
            try:
                trailers = call.trailing_metadata()
            except Exception:  # a failed or odd call object: nothing to read
                return
        side.record(trailers)

    def _call(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        side = self.side
        details = client_call_details
        if side.blocked_until and side.fails_fast(details.method):
            return FastFailure(fast_fail_details(side.target), side.pushback_ms())
        new_details = new_tuple(
            _CallDetails,
            (
                details.method,
                details.timeout,
                side.outgoing(details.metadata),
                details.credentials,
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            ),
        )
        call = continuation(new_details, request)
        call.add_done_callback(self._on_done)
        return call

    # One body for the four arities (grpcio passes the request or the request iterator in
    # the same place), bound under each name so a call costs no extra frame.
    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call
